package scenarios_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/probe"
	"rackdrill.dev/rackdrill/scenarios"
)

// green is a probe that always answers: the rack is fine, only the drill's
// own machinery fails in these cases.
type green string

func (g green) Name() string { return string(g) }
func (g green) Check(context.Context) probe.Result {
	return probe.Result{OK: true}
}

// brokenFault fails where it is told to.
type brokenFault struct {
	inject, revert error
	injected       bool
}

func (f *brokenFault) Name() string { return "nfs-lost" }
func (f *brokenFault) Inject(context.Context) error {
	f.injected = true
	return f.inject
}
func (f *brokenFault) Revert(context.Context) error { return f.revert }
func (f *brokenFault) Record() (string, any)        { return "test-broken", nil }
func (f *brokenFault) String() string               { return "broken fault" }
func d(x time.Duration) metav1.Duration             { return metav1.Duration{Duration: x} }
func quickRow() *matrix.Row {
	cells := map[string]matrix.Cell{}
	for _, p := range matrix.Probes {
		cells[p] = matrix.Cell{During: matrix.Any}
	}
	return &matrix.Row{Fault: "nfs-lost", Source: "test", Cells: cells,
		Settle: d(200 * time.Millisecond), Observe: d(300 * time.Millisecond), Recovery: d(time.Second), RecoverySettle: d(300 * time.Millisecond)}
}

func quickInput(t *testing.T, f *brokenFault) scenarios.ScenarioInput {
	l, err := fault.OpenLedger(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var probes []probe.Probe
	for _, p := range matrix.Probes {
		probes = append(probes, green(p))
	}
	return scenarios.ScenarioInput{Row: quickRow(), Guard: fault.NewGuard(l), Probes: probes,
		Interval: 50 * time.Millisecond, Timeout: time.Second,
		Build: func(context.Context) (fault.Recordable, error) { return f, nil }}
}

// A drill that errored is a failed drill in run.json (and so in the
// reports): never a drill without verdict, which JUnit counted as no test
// and the report could call held.
func TestErroredDrillIsAFailedDrill(t *testing.T) {
	for _, tc := range []struct {
		name       string
		fault      *brokenFault
		wantErr    string
		wantRevert string
	}{
		{"injection failed", &brokenFault{inject: errors.New("iptables: permission denied")}, "inject fault nfs-lost: iptables: permission denied", ""},
		{"revert failed", &brokenFault{revert: errors.New("docker start: no such container")}, "revert fault nfs-lost", "docker start: no such container"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := scenarios.Run(context.Background(), quickInput(t, tc.fault))
			if err == nil {
				t.Fatal("no error")
			}
			if out.Result.Verdict != matrix.Errored || out.Result.Fault != "nfs-lost" || !out.Failed() {
				t.Errorf("verdict %q fault %q failed %v, want an errored, failed drill of nfs-lost", out.Result.Verdict, out.Result.Fault, out.Failed())
			}
			if !strings.Contains(out.Error, tc.wantErr) {
				t.Errorf("error %q, want %q", out.Error, tc.wantErr)
			}
			if !strings.Contains(out.RevertError, tc.wantRevert) || (tc.wantRevert == "") != (out.RevertError == "") {
				t.Errorf("revert error %q, want %q", out.RevertError, tc.wantRevert)
			}
		})
	}
	// Not steady: nothing injected, and still a failed drill.
	in := quickInput(t, &brokenFault{})
	in.Probes[0] = probe.Probe(failing("api"))
	in.Row.Recovery = d(300 * time.Millisecond)
	out, err := scenarios.Run(context.Background(), in)
	if !errors.Is(err, scenarios.ErrNotSteady) || out.Result.Verdict != matrix.Errored || !strings.Contains(out.Error, "not in its steady state") {
		t.Errorf("not steady: err %v, verdict %q, error %q", err, out.Result.Verdict, out.Error)
	}
}

type failing string

func (f failing) Name() string { return string(f) }
func (f failing) Check(context.Context) probe.Result {
	return probe.Result{Err: errors.New("connection refused")}
}

// A fault whose effect is not seen did not take effect: the drill is broken,
// never held nor a deviation, whatever the probes said (here all green, as
// they would be if the fault did nothing).
func TestFaultThatDidNotTakeEffectIsBroken(t *testing.T) {
	in := quickInput(t, &brokenFault{})
	in.Effect = func(fault.Recordable) (fault.Effect, error) {
		return fault.Effect{What: "the NFS server refuses NFS", Within: 300 * time.Millisecond,
			Check: func(context.Context) error { return errors.New("still accepting connections: 10.0.0.1:2049") }}, nil
	}
	out, err := scenarios.Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if out.Result.Verdict != matrix.Broken || !out.Failed() || out.Effect == nil || out.Effect.Seen {
		t.Fatalf("verdict %s, effect %+v", out.Result.Verdict, out.Effect)
	}
	if c := out.Checks[0]; c.OK || !strings.Contains(c.Detail, "fault did not take effect") || !strings.Contains(c.Detail, "10.0.0.1:2049") {
		t.Errorf("check %+v", c)
	}
	// Seen: a passing check that says when.
	in = quickInput(t, &brokenFault{})
	in.Effect = func(fault.Recordable) (fault.Effect, error) {
		return fault.Effect{What: "seen", Within: time.Second, Check: func(context.Context) error { return nil }}, nil
	}
	if out, err := scenarios.Run(context.Background(), in); err != nil || out.Failed() || !out.Effect.Seen || !out.Checks[0].OK {
		t.Errorf("seen effect: err %v, failed %v, effect %+v", err, out.Failed(), out.Effect)
	}
}

// Issue 35, point 5: an effect is read before, during and after. A target
// that did not answer before the fault is no evidence: nothing is injected.
// A fault found undone mid-window fails the drill, naming what came back
// and when.
func TestEffectBeforeAndThroughTheWindow(t *testing.T) {
	defer func(d time.Duration) { fault.EffectRecheck = d }(fault.EffectRecheck)
	fault.EffectRecheck = 50 * time.Millisecond
	f := &brokenFault{}
	in := quickInput(t, f)
	in.Effect = func(fault.Recordable) (fault.Effect, error) {
		return fault.Effect{What: "the NFS server refuses NFS", Within: 300 * time.Millisecond, Held: true,
			Before: func(context.Context) error { return errors.New("dial tcp 10.9.9.9:2049: connect: no route to host") },
			Check:  func(context.Context) error { return nil }}, nil
	}
	out, err := scenarios.Run(context.Background(), in)
	if !errors.Is(err, scenarios.ErrNotSteady) || !strings.Contains(err.Error(), "would prove nothing") || f.injected {
		t.Errorf("a target that never answered: err %v, injected %v", err, f.injected)
	}
	if out.Result.Verdict != matrix.Errored {
		t.Errorf("verdict %s, want error", out.Result.Verdict)
	}
	// Seen, then undone 150 ms into a 300 ms window.
	in = quickInput(t, &brokenFault{})
	var injected time.Time
	in.Effect = func(fault.Recordable) (fault.Effect, error) {
		injected = time.Now()
		return fault.Effect{What: "no MetalLB pod runs", Within: 300 * time.Millisecond, Held: true,
			Before: func(context.Context) error { return nil },
			Check: func(context.Context) error {
				if time.Since(injected) > 150*time.Millisecond {
					return errors.New("still running: controller-7d9f")
				}
				return nil
			}}, nil
	}
	out, err = scenarios.Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if out.Result.Verdict != matrix.Broken || !out.Failed() {
		t.Errorf("a fault undone mid-window: verdict %s", out.Result.Verdict)
	}
	var held *scenarios.Check
	for i := range out.Checks {
		if out.Checks[i].ID == "held" {
			held = &out.Checks[i]
		}
	}
	if held == nil || held.OK || !strings.Contains(held.Detail, "controller-7d9f") || !strings.Contains(held.Detail, "after the injection") {
		t.Errorf("the held check: %+v", out.Checks)
	}
}

// A fault whose machines are chosen at injection is judged against the row
// of that choice. Here the rack stays green throughout: the merged row (any)
// holds, the chosen row's promise (the API down) is broken, as it must be
// when the fault did not do what that choice promises.
func TestJudgedAgainstTheChosenRow(t *testing.T) {
	held, err := scenarios.Run(context.Background(), quickInput(t, &brokenFault{}))
	if err != nil || held.Result.Verdict != matrix.Held {
		t.Fatalf("without a chosen row: %s, %v", held.Result.Verdict, err)
	}
	in := quickInput(t, &brokenFault{})
	chosen := quickRow()
	chosen.Cells["api"] = matrix.Cell{During: matrix.Down, Within: d(100 * time.Millisecond)}
	var asked fault.Recordable
	in.Chosen = func(f fault.Recordable) *matrix.Row { asked = f; return chosen }
	out, err := scenarios.Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if asked == nil || out.Result.Verdict != matrix.Broken {
		t.Errorf("judged against the chosen row: verdict %s (asked with %v)", out.Result.Verdict, asked)
	}
}

// awaitedFault runs its course in the fault window (as the rehearsed upgrade
// and the power drill do) and fails partway.
type awaitedFault struct {
	brokenFault
	err error
}

func (f *awaitedFault) Await(context.Context) error { return f.err }
func (f *awaitedFault) AwaitLimit() time.Duration   { return time.Second }

// A fault that did not run its course (the upgrade stopped at its first
// step) exercised none of the promises its row makes: the probes stayed
// green because nothing happened, and the drill is never "held".
func TestFaultThatDidNotRunItsCourseIsNotHeld(t *testing.T) {
	f := &awaitedFault{err: errors.New("step 3 [server-1] kubeadm v1.34.4: copy the kit onto server-1: exit status 2")}
	in := quickInput(t, &f.brokenFault)
	in.Build = func(context.Context) (fault.Recordable, error) { return f, nil }
	out, err := scenarios.Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if out.Result.Verdict == matrix.Held || !out.Failed() {
		t.Fatalf("verdict %s, failed %v, checks %+v", out.Result.Verdict, out.Failed(), out.Checks)
	}
	var c *scenarios.Check
	for i := range out.Checks {
		if strings.HasSuffix(out.Checks[i].Name, "runs its course") {
			c = &out.Checks[i]
		}
	}
	if c == nil || c.OK || !strings.Contains(c.Detail, "step 3 [server-1]") {
		t.Errorf("the check names the step that failed: %+v", out.Checks)
	}
	// Run to its end: held, as the probes saw.
	f = &awaitedFault{}
	in = quickInput(t, &f.brokenFault)
	in.Build = func(context.Context) (fault.Recordable, error) { return f, nil }
	if out, err := scenarios.Run(context.Background(), in); err != nil || out.Result.Verdict != matrix.Held || out.Failed() {
		t.Errorf("run to its end: verdict %s, err %v, checks %+v", out.Result.Verdict, err, out.Checks)
	}
}

// slowGreen answers every request, each after took: the heal probe's shape.
type slowGreen struct {
	name string
	took time.Duration
}

func (s slowGreen) Name() string { return s.name }
func (s slowGreen) Check(ctx context.Context) probe.Result {
	time.Sleep(s.took)
	return probe.Result{OK: true, Took: s.took}
}

// The recovery's settle window waited for three answers of every probe, one
// of them the answer of a heal sent before the revert, which the verdict does
// not count: worker-lost's heal was "not recovered for good: 2 answers" on
// the lab. The wait counts what the verdict counts.
func TestRecoveryWaitCountsWhatTheVerdictCounts(t *testing.T) {
	in := quickInput(t, &brokenFault{})
	in.Probes = []probe.Probe{green("api"), slowGreen{"heal", 400 * time.Millisecond}}
	in.Unprobed = map[string]string{"lan": "-", "internet": "-", "apps": "-", "storage": "-", "data": "-"}
	in.Row.Settle, in.Row.Recovery = d(1500*time.Millisecond), d(5*time.Second)
	out, err := scenarios.Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range out.Result.Cells {
		if c.Probe == "heal" && !c.RecoveryHeld {
			t.Errorf("a slow probe green throughout: %s", c.Why)
		}
	}
}
