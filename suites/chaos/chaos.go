// Package chaos is the chaos suite: one Serial spec per row of the impact
// matrix, labelled chaos plus the row's labels (disruptive, quorum, power).
// Importing the package declares the specs; framework.RunSuite (go test, the
// ginkgo CLI) or framework.RunInProcess (`rackdrill run`) runs them.
package chaos

import (
	"context"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads as prose
	"github.com/onsi/ginkgo/v2/types"
	. "github.com/onsi/gomega" //nolint:revive

	"rackdrill.dev/rackdrill/scenarios"
	"rackdrill.dev/rackdrill/suites/framework"
)

// One Serial spec per matrix row, in the matrix's order: faults never overlap.
// The tree is built when
// the specs run, after the framework has loaded the matrix.
func init() { framework.Declare("chaos", 3, specs) }

func specs() {
	Describe("impact matrix", Label("chaos"), func() {
		env := framework.Current()
		for i, row := range env.Matrix.Rows {
			// A drill's code location is its row of the matrix, so that ginkgo
			// runs the rows in the matrix's order.
			at := types.CodeLocation{FileName: env.MatrixFile, LineNumber: i + 1}
			Describe(row.Fault+": "+row.Title, at, Serial, Label(row.Labels...), func() {
				scenarios.ScenarioSpec(context.Background(), &row, env.BatteryBudget(), func() scenarios.ScenarioInput {
					in, err := env.DrillInput(&row)
					Expect(err).NotTo(HaveOccurred())
					return in
				}, env.Record)
			})
		}
	})
}
