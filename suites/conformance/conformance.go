// Package conformance is the conformance suite: the rack is the one its
// architecture document describes. One spec per check of harness/conform,
// labelled conformance and its family, named with the topology field it
// checks. Every check is read-only, but for the stateful app's round-trip in
// the harness's own volume. Importing the package declares the specs.
package conformance

import (
	"context"
	"fmt"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads as prose
	"github.com/onsi/ginkgo/v2/types"
	. "github.com/onsi/gomega" //nolint:revive

	"rackdrill.dev/rackdrill/harness/conform"
	"rackdrill.dev/rackdrill/suites/framework"
)

func init() { framework.Declare("conformance", 1, specs) }

func specs() {
	Describe("architecture", Label("conformance"), func() {
		It("every machine of spec.nodes is part of the rack", func(ctx context.Context) {
			Expect(framework.Current().Connect(ctx)).To(Succeed())
		})
		for i, c := range conform.Checks() {
			// Ginkgo orders specs by code location: one per check keeps the
			// checks in conform.Checks' order (the same file and line for all
			// would leave their order to chance).
			at := types.CodeLocation{FileName: "rackdrill.dev/rackdrill/harness/conform.Checks", LineNumber: i + 1}
			It(fmt.Sprintf("%s [%s]", c.Name, c.Field), at, Label(c.Family), func(ctx context.Context) {
				CheckSpec(ctx, c)
			})
		}
	})
}

// CheckSpec runs one check against the current rack, records its result for
// run.json and fails the spec with the check's message.
func CheckSpec(ctx context.Context, c conform.Check) {
	env := framework.Current()
	t, err := env.Target(ctx)
	Expect(err).NotTo(HaveOccurred(), "reach rack %s", env.Rack.Metadata.Name)
	res := conform.Run(ctx, t, c, framework.CheckLimit)
	env.RecordCheck(res)
	switch {
	case res.Skipped != "":
		Skip(res.Skipped)
	case !res.Passed:
		Fail(res.Error)
	}
	AddReportEntry("observed", res.Observed, ReportEntryVisibilityFailureOrVerbose)
}
