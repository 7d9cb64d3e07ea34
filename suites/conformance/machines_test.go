package conformance

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

var _ = Describe("machines", Label("conformance"), func() {
	It("every machine of spec.nodes is part of the rack", func(ctx context.Context) {
		Expect(env.Connect(ctx)).To(Succeed())
	})
})
