// Package preupgrade is what must hold before an upgrade of a real rack.
// Importing the package declares the specs.
package preupgrade

import (
	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads as prose
	. "github.com/onsi/gomega"    //nolint:revive

	"rackdrill.dev/rackdrill/suites/framework"
)

func init() { framework.Declare("preupgrade", 2, specs) }

func specs() {
	Describe("drills", Label("preupgrade"), func() {
		It("no fault of an earlier run is still in place (the fault ledger is empty)", func() {
			env := framework.Current()
			live, err := env.Ledger.Entries()
			Expect(err).NotTo(HaveOccurred())
			Expect(live).To(BeEmpty(), "run `rackdrill recover --artifacts %s` before upgrading", env.Artifacts)
		})
	})
}
