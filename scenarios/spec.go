package scenarios

import (
	"context"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads as prose
	. "github.com/onsi/gomega"    //nolint:revive

	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/matrix"
)

// RevertGrace is how long ginkgo waits for a drill's spec after an interrupt
// (Ctrl-C, the suite's timeout): the longest revert of any fault and a minute
// to record the outcome. Ginkgo's own default (30 s) would abandon a revert
// that powers machines on, and the process could end with the fault in
// place. A second Ctrl-C still abandons it (the ledger keeps the fault for
// `rackdrill recover`).
var RevertGrace = fault.LongestRevert() + time.Minute

// ScenarioSpec declares the drill of one matrix row as a spec. inputGetter is
// called when the spec runs (after the suite's BeforeSuite has built the rack),
// and record receives every outcome, held or not, for the reports.
func ScenarioSpec(ctx context.Context, inputGetter func() ScenarioInput, record func(Outcome)) {
	It("holds every promise of its matrix row, and the rack recovers", GracePeriod(RevertGrace), func(specCtx SpecContext) {
		input := inputGetter()
		if input.NotApplicable != "" {
			out, err := Run(ctx, input)
			Expect(err).NotTo(HaveOccurred())
			record(out)
			Skip("not applicable: " + input.NotApplicable)
		}
		out, err := Run(specCtx, input)
		if (err != nil || out.Failed()) && input.Dump != nil {
			why := "failed"
			if err != nil {
				why = err.Error()
			}
			dir, derr := input.Dump(context.WithoutCancel(specCtx), why)
			if derr != nil {
				GinkgoLogr.Error(derr, "dump of the failed drill is incomplete", "dir", dir)
			}
			out.Dump = dir
			AddReportEntry("artifacts of the failed drill", dir)
		}
		record(out)
		Expect(out.RevertErr).NotTo(HaveOccurred(), "the fault could not be reverted: run `rackdrill recover`")
		Expect(err).NotTo(HaveOccurred())
		Expect(out.Result.Verdict).NotTo(Equal(matrix.Broken), brokenCells(out))
		for _, c := range out.Checks {
			Expect(c.OK).To(BeTrue(), "%s: %s", c.Name, c.Detail)
		}
	})
}

// brokenCells says, per broken cell, the promise, the observation and the
// timing, then each failed check (a fault that did not take effect or did
// not run its course breaks its row without a broken cell).
func brokenCells(out Outcome) string {
	rr := out.Result
	var b strings.Builder
	fmt.Fprintf(&b, "%s: promises broken (source: %s)\n", rr.Fault, rr.Source)
	for _, c := range rr.Cells {
		if c.Verdict != matrix.Broken {
			continue
		}
		fmt.Fprintf(&b, "  %-8s promised %s, observed %s: %s (impact %s, longest outage %s, recovery %s)\n",
			c.Probe, c.Promise.During, c.Observed, c.Why, matrix.Since(c.TimeToImpact),
			c.LongestOutage.Round(1e7), matrix.Since(c.TimeToRecovery))
		if steps := StepsDuringOutage(out, c.Probe); len(steps) > 0 {
			fmt.Fprintf(&b, "           its longest outage was during: %s\n", strings.Join(steps, "; "))
		}
	}
	for _, c := range out.Checks {
		if !c.OK {
			fmt.Fprintf(&b, "  check failed: %s: %s\n", c.Name, c.Detail)
		}
	}
	return b.String()
}

// StepsDuringOutage names the steps of a stepped fault (the rehearsed
// upgrade) in progress during the probe's longest outage while the fault was
// in place: from its first failed sample to the next good one.
func StepsDuringOutage(out Outcome, probe string) []string {
	if len(out.Steps) == 0 {
		return nil
	}
	w := out.Result.Window
	from, to, ok := matrix.LongestOutage(out.Timelines.Samples()[probe], w.Inject, w.Revert)
	if !ok {
		return nil
	}
	var names []string
	for i, st := range out.Steps {
		if st.Start.Before(to) && !st.End.Before(from) {
			names = append(names, fmt.Sprintf("step %d %s", i+1, st.Name))
		}
	}
	return names
}
