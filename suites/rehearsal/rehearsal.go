// Package rehearsal is the rehearsal suite: one Serial spec, the lab
// upgraded to the run's target release (--to) machine by machine along the
// rack's runbook while every probe samples, judged by the rolling-upgrade row
// of scenarios/rehearsal-matrix.yaml. It is labelled rehearsal and runs only
// when selected (`rackdrill rehearse`), after the conformance suite and the
// pre-upgrade checks. Importing the package declares the spec.
package rehearsal

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads as prose
	. "github.com/onsi/gomega"    //nolint:revive

	"rackdrill.dev/rackdrill/harness/cluster/containers"
	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/preflight"
	"rackdrill.dev/rackdrill/harness/upgrade"
	"rackdrill.dev/rackdrill/scenarios"
	"rackdrill.dev/rackdrill/suites/framework"
)

// DrainTimeout bounds each drain of the rehearsal (the runbook's --timeout).
var DrainTimeout = 10 * time.Minute

func init() {
	framework.DeclareUpgrade("rehearsal", 4, specs)
	// The conformance suite again once the upgrade is over: every check
	// green at the new release. Labelled rehearsal too, so that only a run
	// that selects the rehearsal runs it (rackdrill preflight --to selects
	// "(conformance || preupgrade) && !rehearsal").
	framework.DeclareUpgrade(AfterUpgrade, 5, func() {
		Describe("after the upgrade", Label("rehearsal"), framework.SpecsOf("conformance"))
	})
}

// AfterUpgrade is the suite of the conformance checks run after the upgrade.
const AfterUpgrade = "after-upgrade"

func specs() {
	Describe("rehearsal", Label("rehearsal"), Serial, func() {
		env := framework.Current()
		row, err := scenarios.RehearsalRow()
		if err != nil {
			panic(err) // built in and tested: scenarios.TestRehearsalRow
		}
		Describe(row.Fault+": "+row.Title, func() {
			scenarios.ScenarioSpec(context.Background(), row, env.BatteryBudget(), func() scenarios.ScenarioInput {
				Expect(env.UpgradeTo).NotTo(BeEmpty(), "the rehearsal needs the target release (--to)")
				if failed := env.FailedSpecs(); len(failed) > 0 {
					Skip(NotRehearsed(failed))
				}
				rb, err := preflight.NewRunbook(env.Rack, env.UpgradeTo)
				Expect(err).NotTo(HaveOccurred())
				kit, err := lab.ContentTag(env.UpgradeTo + "/kit")
				Expect(err).NotTo(HaveOccurred())
				in, err := env.RehearsalInput(row, func(ctx context.Context) (fault.Recordable, error) {
					nodes, err := env.Nodes.Nodes(ctx)
					if err != nil {
						return nil, err
					}
					cs, err := env.Client.Clientset(ctx)
					if err != nil {
						return nil, err
					}
					dns, err := containers.DNSPlacement(env.Rack)
					if err != nil {
						return nil, err
					}
					l := &upgrade.Lab{Rack: env.Rack, Nodes: nodes, Kube: cs, Kit: kit, DNSPlacement: dns,
						Logs: filepath.Join(env.Artifacts, "rehearsal"), Out: GinkgoWriter,
						DrainTimeout: DrainTimeout, ReadyTimeout: 5 * time.Minute}
					if env.Progress != nil {
						l.Out = progressWriter{env.Progress}
					}
					return upgrade.NewRolling(l, rb), nil
				})
				Expect(err).NotTo(HaveOccurred())
				return in
			}, env.Record)
		})
	})
}

// NotRehearsed says why the upgrade was not performed: checks before it
// failed, and a rack that fails them is not upgraded.
func NotRehearsed(failed []string) string {
	return fmt.Sprintf("not rehearsed: %d checks before the upgrade failed (a rack that fails them is not upgraded; fix them first): %s",
		len(failed), strings.Join(failed, "; "))
}

// progressWriter turns the upgrade's lines into the run's progress.
type progressWriter struct{ progress func(fault, phase string) }

func (p progressWriter) Write(b []byte) (int, error) {
	p.progress(upgrade.Kind, string(trimNL(b)))
	return len(b), nil
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	return b
}
