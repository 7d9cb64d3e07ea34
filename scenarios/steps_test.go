package scenarios_test

import (
	"slices"
	"testing"
	"time"

	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/probe"
	"rackdrill.dev/rackdrill/harness/runrecord"
	"rackdrill.dev/rackdrill/scenarios"
)

// A promise broken during the rehearsed upgrade names the step it broke in:
// the steps in progress during the probe's longest outage.
func TestStepsDuringOutage(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	out := scenarios.Outcome{
		Result: matrix.RowResult{Window: matrix.Window{Inject: at(0), Revert: at(100)}},
		Steps: []runrecord.Step{
			{Name: "[server-1] kubeadm upgrade apply", Start: at(0), End: at(40)},
			{Name: "[operator] drain worker-2", Start: at(40), End: at(55)},
			{Name: "[worker-2] kubelet", Start: at(55), End: at(90)},
		},
		Timelines: probe.Timelines{"apps": {
			{At: at(10), OK: true}, {At: at(12), OK: false}, {At: at(13), OK: true}, // a blip in step 1
			{At: at(50), OK: false}, {At: at(60), OK: false}, {At: at(70), OK: true}, // 20 s over steps 2 and 3
			{At: at(95), OK: true},
		}},
	}
	want := []string{"step 2 [operator] drain worker-2", "step 3 [worker-2] kubelet"}
	if got := scenarios.StepsDuringOutage(out, "apps"); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := scenarios.StepsDuringOutage(out, "api"); got != nil {
		t.Errorf("a probe without outage: %q", got)
	}
}
