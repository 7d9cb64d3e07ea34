// Package conformance is the conformance suite: the rack is the one its
// architecture document describes. Every check is read-only and names the
// topology field it checks. Importing the package declares the specs.
package conformance

import (
	"context"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads as prose
	. "github.com/onsi/gomega"    //nolint:revive

	"rackdrill.dev/rackdrill/suites/framework"
)

func init() { framework.Declare("conformance", 1, specs) }

func specs() {
	Describe("machines", Label("conformance"), func() {
		It("every machine of spec.nodes is part of the rack", func(ctx context.Context) {
			Expect(framework.Current().Connect(ctx)).To(Succeed())
		})
	})
}
