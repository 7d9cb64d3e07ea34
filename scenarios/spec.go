package scenarios

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads as prose
	"github.com/onsi/ginkgo/v2/types"
	. "github.com/onsi/gomega" //nolint:revive

	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/matrix"
)

// DumpLimit bounds the dump of a failed drill (framework's dump), which runs
// inside the interrupt grace too.
const DumpLimit = 3 * time.Minute

// RevertGrace is how long ginkgo waits for a drill's spec after an interrupt
// (Ctrl-C, the suite's timeout), from the plan: the longest the revert of
// the selected fault may take (the power drill's with the rack's battery
// budget), the dump of the failed drill, and a minute to record the
// outcome. Ginkgo's own default (30 s) would abandon a revert that powers
// machines on, and the process could end with the fault in place. A second
// Ctrl-C still abandons it (the ledger keeps the fault for `rackdrill
// recover`).
func RevertGrace(row string, battery time.Duration) time.Duration {
	return fault.RevertLimitFor(row, battery) + DumpLimit + time.Minute
}

// ScenarioSpec declares the drill of one matrix row as a spec. inputGetter is
// called when the spec runs (after the suite's BeforeSuite has built the rack),
// and record receives every outcome, held or not, for the reports: a drill
// whose input failed, or that was abandoned after the grace, is recorded as
// an errored drill with its reason, every cell of row saying it was not
// judged. battery is the rack's UPS battery budget (0 without a UPS), for
// the grace.
func ScenarioSpec(ctx context.Context, row *matrix.Row, battery time.Duration, inputGetter func() ScenarioInput, record func(Outcome)) {
	It("holds every promise of its matrix row, and the rack recovers", GracePeriod(RevertGrace(row.Fault, battery)), func(specCtx SpecContext) {
		var recorded atomic.Bool
		once := func(o Outcome) {
			if recorded.CompareAndSwap(false, true) {
				record(o)
			}
		}
		DeferCleanup(func() {
			// Nothing recorded: the input failed (an Expect before Run),
			// or the spec was abandoned after the grace. Either way a failed
			// drill, in every report, with its reason.
			if recorded.Load() {
				return
			}
			rep := CurrentSpecReport()
			if rep.State.Is(types.SpecStateSkipped) {
				return
			}
			why := "the drill failed before it ran"
			if msg := strings.TrimSpace(rep.Failure.Message); msg != "" {
				why += ": " + msg
			}
			if rep.State.Is(types.SpecStateInterrupted | types.SpecStateAborted | types.SpecStateTimedout) {
				why = fmt.Sprintf("the drill was abandoned after its %s grace (%s): its revert may not have finished; run `rackdrill recover`",
					RevertGrace(row.Fault, battery), rep.State)
			}
			once(ErroredOutcome(row, why))
		})
		input := inputGetter()
		if input.NotApplicable != "" {
			out, err := Run(ctx, input)
			Expect(err).NotTo(HaveOccurred())
			once(out)
			Skip("not applicable: " + input.NotApplicable)
		}
		out, err := Run(specCtx, input)
		if (err != nil || out.Failed()) && input.Dump != nil {
			why := "failed"
			if err != nil {
				why = err.Error()
			}
			dctx, cancel := context.WithTimeout(context.WithoutCancel(specCtx), DumpLimit)
			dir, derr := input.Dump(dctx, why)
			cancel()
			if derr != nil {
				GinkgoLogr.Error(derr, "dump of the failed drill is incomplete", "dir", dir)
			}
			out.Dump = dir
			AddReportEntry("artifacts of the failed drill", dir)
		}
		once(out)
		// The failure's message is the verdict's reason alone: what an SRE
		// reads in CI, without the matcher's wording.
		if out.RevertErr != nil {
			Fail("the fault could not be reverted: run `rackdrill recover`: " + out.RevertErr.Error())
		}
		if err != nil {
			Fail(err.Error())
		}
		if out.Failed() {
			Fail(brokenCells(out))
		}
	})
}

// ErroredOutcome is a drill of row that failed before or outside its run:
// verdict error, every cell of the row not judged, for why.
func ErroredOutcome(row *matrix.Row, why string) Outcome {
	return Outcome{Result: matrix.ErroredRow(row, why), Error: why}
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
