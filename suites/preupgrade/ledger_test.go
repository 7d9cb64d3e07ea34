package preupgrade

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

var _ = Describe("drills", Label("preupgrade"), func() {
	It("no fault of an earlier run is still in place (the fault ledger is empty)", func() {
		live, err := env.Ledger.Entries()
		Expect(err).NotTo(HaveOccurred())
		Expect(live).To(BeEmpty(), "run `rackdrill recover --artifacts %s` before upgrading", env.Artifacts)
	})
})
