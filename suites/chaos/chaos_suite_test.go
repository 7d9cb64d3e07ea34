// Package chaos is the chaos suite: one Serial spec per row of the impact
// matrix, labelled chaos plus the row's labels (disruptive, quorum, power).
package chaos

import (
	"context"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"rackdrill.dev/rackdrill/suites/framework"
)

var env *framework.Env

func TestChaos(t *testing.T) { framework.RunSuite(t, "chaos", &env) }

var _ = BeforeSuite(func(ctx context.Context) {
	Expect(env.Connect(ctx)).To(Succeed())
	live, err := env.Ledger.Entries()
	Expect(err).NotTo(HaveOccurred())
	Expect(live).To(BeEmpty(), "faults of an earlier run may still be in place: run `rackdrill recover` first")
})

var _ = ReportAfterSuite("run.json", func(Report) {
	p, err := env.WriteRun("chaos")
	Expect(err).NotTo(HaveOccurred())
	GinkgoLogr.Info("drills recorded", "file", p)
})
