package chaos

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"rackdrill.dev/rackdrill/scenarios"
)

// One Serial spec per matrix row: faults never overlap.
var _ = Describe("impact matrix", Label("chaos"), func() {
	for _, row := range env.Matrix.Rows {
		Describe(row.Fault+": "+row.Title, Serial, Label(row.Labels...), func() {
			scenarios.ScenarioSpec(context.Background(), func() scenarios.ScenarioInput {
				in, err := env.DrillInput(&row)
				Expect(err).NotTo(HaveOccurred())
				return in
			}, env.Record)
		})
	}
})
