package matrix_test

import (
	"strings"
	"testing"
	"time"

	"rackdrill.dev/rackdrill/harness/matrix"
)

// Issue 35, "Verdicts, second pass": each test below is one way the first
// pass still let a verdict call a real outage acceptable.

// Point 4: an explicit downtime below within was silently raised to within
// (within 30s, downtime 10s: 25 s down was "held").
func TestDowntimeHonouredAsWritten(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	w := matrix.Window{Inject: t0, Revert: t0.Add(60 * time.Second), End: t0.Add(90 * time.Second)}
	// Down from +10 s to +35 s, one outage of 25 s.
	ok := func(i int) bool {
		at := 250 * time.Millisecond * time.Duration(i)
		return at < 10*time.Second || at >= 35*time.Second
	}
	samples := requests(t0, 0, 360, 200*time.Millisecond, func(int) time.Duration { return 50 * time.Millisecond }, ok)
	c := matrix.Cell{During: matrix.Up, Within: metaDur(30 * time.Second), Downtime: metaDur(10 * time.Second)}
	got := judge(t, c, samples, w, time.Minute)
	if got.Verdict != matrix.Broken {
		t.Fatalf("25 s down against a 10 s downtime: %s, want broken: %s", got.Verdict, got.Why)
	}
	if !strings.Contains(got.Why, "over the 10s budget") {
		t.Errorf("why = %q, want the 10s downtime named", got.Why)
	}
}

// Point 4: the default downtime was max(upDowntime, within), so a cell with
// a 90 s within on a 120 s window could be down 75% of the fault and be "up".
// The default is now a stated share of the row's window, never raised.
func TestDefaultDowntimeIsAShareOfTheWindow(t *testing.T) {
	m, err := matrix.Parse([]byte(matrixHead+`  - fault: worker-lost
    source: doc
    observe: 120s
    cells: {api: {during: up}, heal: {during: up, within: 75s, downtime: 35s}, lan: {during: up, within: 30s}, internet: {during: up}, apps: {during: up, within: 90s}, storage: {during: up}, data: {during: any}}
  - fault: short
    source: doc
    cells: {api: {during: up}, heal: {during: up}, lan: {during: up}, internet: {during: up}, apps: {during: up}, storage: {during: up}, data: {during: any}}
`), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	row := m.Row("worker-lost")
	for probe, want := range map[string]time.Duration{"apps": 18 * time.Second, "lan": 18 * time.Second, "heal": 35 * time.Second, "api": 18 * time.Second} {
		if got := row.Cells[probe].Downtime.Duration; got != want {
			t.Errorf("worker-lost %s downtime %s, want %s", probe, got, want)
		}
	}
	if got := m.Row("short").Cells["api"].Downtime.Duration; got != 9*time.Second {
		t.Errorf("60 s window: downtime %s, want 9s (15%%)", got)
	}
	// apps down 90 s of 120 s in short bursts: no longer "up".
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	w := matrix.Window{Inject: t0, Revert: t0.Add(120 * time.Second), End: t0.Add(150 * time.Second)}
	ok := func(i int) bool { return i%4 == 3 || i > 500 }
	samples := requests(t0, 0, 600, 200*time.Millisecond, func(int) time.Duration { return 50 * time.Millisecond }, ok)
	if got := judge(t, row.Cells["apps"], samples, w, time.Minute); got.Verdict != matrix.Broken {
		t.Errorf("apps down most of the window: %s, want broken: %s", got.Verdict, got.Why)
	}
	for _, bad := range []string{"0%", "150%", "ten", "-5s"} {
		_, err := matrix.Parse([]byte(strings.Replace(`apiVersion: rackdrill.dev/v1alpha1
kind: ImpactMatrix
probes: [api, heal, lan, internet, apps, storage, data]
defaults: {settle: 20s, observe: 60s, recovery: 3m, upWithin: 5s, downWithin: 30s, upDowntime: X}
rows:
  - fault: a
    source: doc
    cells: {api: {during: up}, heal: {during: up}, lan: {during: up}, internet: {during: up}, apps: {during: up}, storage: {during: up}, data: {during: any}}
`, "X", `"`+bad+`"`, 1)), "m.yaml")
		if err == nil || !strings.Contains(err.Error(), "upDowntime") {
			t.Errorf("upDowntime %s: error %v, want one naming defaults.upDowntime", bad, err)
		}
	}
}

// flapping is a probe's timeline over a window from t0: requests 250 ms
// apart, each answering in 50 ms, except that from `from` to `to` every
// third request meets a dead endpoint and hangs 2 s to its timeout (first
// at firstFail).
func flapping(t0 time.Time, span time.Duration, firstFail, to time.Duration) []matrix.Sample {
	var out []matrix.Sample
	at := t0.Add(-10 * time.Second)
	n := 0
	for at.Before(t0.Add(span)) {
		rel := at.Sub(t0)
		s := matrix.Sample{OK: true, Took: 50 * time.Millisecond}
		if rel >= firstFail && rel < to {
			if rel < firstFail+250*time.Millisecond || n%3 == 0 {
				s = matrix.Sample{OK: false, Took: 2 * time.Second, Err: "context deadline exceeded"}
			}
			n++
		}
		at = at.Add(s.Took)
		s.At = at
		out = append(out, s)
		at = at.Add(200 * time.Millisecond)
	}
	return out
}

func overlay(t *testing.T, m *matrix.Matrix, body string) *matrix.Deviations {
	t.Helper()
	d, err := matrix.ParseDeviations([]byte("apiVersion: rackdrill.dev/v1alpha1\nkind: Deviations\nenvironment: containers\ndeviations:\n"+body), "dev.yaml", m)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func workerLostMatrix(t *testing.T) *matrix.Matrix {
	t.Helper()
	m, err := matrix.Parse([]byte(matrixHead+`  - fault: worker-lost
    source: doc
    observe: 120s
    cells: {api: {during: up}, heal: {during: up}, lan: {during: up, within: 30s}, internet: {during: up, within: 30s}, apps: {during: up}, storage: {during: up}, data: {during: any}}
  - fault: server-kill-1
    source: doc
    cells: {api: {during: up}, heal: {during: up}, lan: {during: up}, internet: {during: up}, apps: {during: up}, storage: {during: up}, data: {during: any}}
`), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const flappingLan = `  - fault: worker-lost
    probe: lan
    observed: flapping
    until: node-grace+15s
    longest: 20s
    total: node-grace
    reason: the lost worker's ingress pod stays in the endpoints until the node grace ends
  - fault: server-kill-1
    probe: lan
    observed: flapping
    until: node-grace+15s
    longest: 20s
    total: node-grace
    reason: the dead server's ingress pod stays in the endpoints until the node grace ends
`

func judgeRow(m *matrix.Matrix, d *matrix.Deviations, fault, probe string, samples []matrix.Sample, w matrix.Window, s matrix.Settings) matrix.CellResult {
	rr := matrix.EvaluateRow(m.Row(fault), map[string][]matrix.Sample{probe: samples}, w, matrix.Judging{Deviations: d, Settings: s})
	for _, c := range rr.Cells {
		if c.Probe == probe {
			return c
		}
	}
	return matrix.CellResult{}
}

// Point 1: observed flapping bounded only its first failure: the K3s lab's
// server-kill-1 lan failing from +1 s to the revert with one good answer
// at +2 s, and kubeadm's worker-lost lan down 1m59s of 2m, were deviations.
// A deviation now bounds its outage: longest, total, and by when the path
// is back, from the mechanism (the node grace).
func TestDeviationBoundsTheOutageItExcuses(t *testing.T) {
	m := workerLostMatrix(t)
	d := overlay(t, m, flappingLan)
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

	// The mechanism as declared: a share of the requests fails until +52 s.
	w := matrix.Window{Inject: t0, Revert: t0.Add(120 * time.Second), End: t0.Add(150 * time.Second)}
	if got := judgeRow(m, d, "worker-lost", "lan", flapping(t0, 150*time.Second, 500*time.Millisecond, 52*time.Second), w, matrix.Settings{}); got.Verdict != matrix.KnownDeviation {
		t.Errorf("flapping until +52 s: %s, want deviation: %s", got.Verdict, got.Why)
	} else if !strings.Contains(got.Why, "back by +1m5s") {
		t.Errorf("a deviation's verdict names its bounds: %q", got.Why)
	}
	// worker-lost lan flapping to +119 s: the same first failure, the
	// outage past the node grace.
	got := judgeRow(m, d, "worker-lost", "lan", flapping(t0, 150*time.Second, 500*time.Millisecond, 119*time.Second), w, matrix.Settings{})
	if got.Verdict != matrix.Broken {
		t.Errorf("flapping until +119 s: %s, want broken: %s", got.Verdict, got.Why)
	}
	if !strings.Contains(got.Why, "does not apply") || !strings.Contains(got.Why, "over its 50s (node-grace)") {
		t.Errorf("why = %q, want the deviation's bounds it broke", got.Why)
	}
	// server-kill-1: down from +1 s to the revert, one good answer at +2 s.
	w60 := matrix.Window{Inject: t0, Revert: t0.Add(60 * time.Second), End: t0.Add(90 * time.Second)}
	var sk []matrix.Sample
	for at := -5 * time.Second; at < 90*time.Second; at += 500 * time.Millisecond {
		ok := at < time.Second || (at >= 2*time.Second && at < 2500*time.Millisecond) || at >= 62*time.Second
		sk = append(sk, matrix.Sample{At: t0.Add(at), OK: ok, Took: 20 * time.Millisecond})
	}
	if got := judgeRow(m, d, "server-kill-1", "lan", sk, w60, matrix.Settings{}); got.Verdict != matrix.Broken {
		t.Errorf("server-kill-1 lan down 59 s of 60: %s, want broken: %s", got.Verdict, got.Why)
	}
	// The rack's node grace moves the bound: 40 s (before Kubernetes 1.32).
	if got := judgeRow(m, d, "worker-lost", "lan", flapping(t0, 150*time.Second, 500*time.Millisecond, 52*time.Second), w,
		matrix.Settings{NodeGrace: matrix.NodeGraceFor("v1.31.4")}); got.Verdict != matrix.Broken {
		t.Errorf("flapping until +52 s with a 40 s node grace: %s, want broken: %s", got.Verdict, got.Why)
	}
}

// Point 11: the K3s lab's server-kill-1 was broken in one run (internet's
// first failure at +5.9 s, past the deviation's "within 5s") and a
// deviation in three (0.2-1.1 s). A share of requests meeting a dead
// endpoint fails first by chance: the verdict must not hang on it.
func TestFlappingVerdictDoesNotHangOnTheFirstFailure(t *testing.T) {
	m := workerLostMatrix(t)
	d := overlay(t, m, flappingLan)
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	w := matrix.Window{Inject: t0, Revert: t0.Add(60 * time.Second), End: t0.Add(90 * time.Second)}
	var verdicts []matrix.Verdict
	for _, first := range []time.Duration{200 * time.Millisecond, 1100 * time.Millisecond, 2200 * time.Millisecond, 5900 * time.Millisecond} {
		got := judgeRow(m, d, "server-kill-1", "lan", flapping(t0, 90*time.Second, first, 50*time.Second), w, matrix.Settings{})
		verdicts = append(verdicts, got.Verdict)
	}
	for _, v := range verdicts[1:] {
		if v != verdicts[0] {
			t.Fatalf("verdicts by first failure at 0.2, 1.1, 2.2, 5.9 s: %v, want one verdict", verdicts)
		}
	}
	if verdicts[0] != matrix.KnownDeviation {
		t.Errorf("verdict %s, want deviation (the mechanism's bounds kept)", verdicts[0])
	}
	// And a flapping deviation may not hang on it either.
	_, err := matrix.ParseDeviations([]byte(`apiVersion: rackdrill.dev/v1alpha1
kind: Deviations
environment: containers
deviations:
  - {fault: server-kill-1, probe: lan, observed: flapping, within: 5s, reason: r}
`), "dev.yaml", m)
	for _, want := range []string{"deviations[0].within", "first failure is chance", "deviations[0].until: Required", "deviations[0].longest: Required", "deviations[0].total: Required"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("flapping with within and no bounds: error %v, want %q", err, want)
		}
	}
}

// Point 2: worker-lost internet "down within 15s" exists because the tunnel
// client ran on the lost worker; it excused 119.5 s down with the tunnel pod
// on the surviving worker. Now it applies only when the run observed, before
// the fault, that the tunnel client ran on the lost machine.
func TestDeviationAppliesOnlyUnderItsObservedCondition(t *testing.T) {
	m := workerLostMatrix(t)
	d := overlay(t, m, `  - fault: worker-lost
    probe: internet
    observed: down
    within: 15s
    when: [tunnel-client-on-target]
    reason: the tunnel client is a single pod, on the lost worker
`)
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	w := matrix.Window{Inject: t0, Revert: t0.Add(120 * time.Second), End: t0.Add(150 * time.Second)}
	var down []matrix.Sample
	for at := -5 * time.Second; at < 150*time.Second; at += 250 * time.Millisecond {
		down = append(down, matrix.Sample{At: t0.Add(at), OK: at < 500*time.Millisecond || at >= 121*time.Second, Took: 10 * time.Millisecond})
	}
	for _, tc := range []struct {
		name string
		cond map[string]bool
		want matrix.Verdict
		why  string
	}{
		{"on the lost worker", map[string]bool{matrix.CondTunnelClientOnTarget: true}, matrix.KnownDeviation, "excused by the declared deviation"},
		{"on the other worker", map[string]bool{matrix.CondTunnelClientOnTarget: false}, matrix.Broken, "did not hold before the fault"},
		{"never looked", nil, matrix.Broken, "was not observed before the fault"},
	} {
		got := judgeRow(m, d, "worker-lost", "internet", down, w, matrix.Settings{Conditions: tc.cond})
		if got.Verdict != tc.want || !strings.Contains(got.Why, tc.why) {
			t.Errorf("tunnel client %s: %s (%s), want %s with %q", tc.name, got.Verdict, got.Why, tc.want, tc.why)
		}
	}
	if _, err := matrix.ParseDeviations([]byte(`apiVersion: rackdrill.dev/v1alpha1
kind: Deviations
environment: containers
deviations:
  - {fault: worker-lost, probe: internet, observed: down, within: 15s, when: [tunnel-on-mars], reason: r}
`), "dev.yaml", m); err == nil || !strings.Contains(err.Error(), "deviations[0].when[0]: Unsupported value") {
		t.Errorf("unknown condition: %v", err)
	}
}

// Point 6: recovery "for good" was about 2.5 s of green (2*interval+timeout;
// heal: one good sample): a path that failed again seconds later was not
// seen. It now takes the settle window, with several answers.
func TestRecoveryForGoodNeedsTheSettleWindow(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	c := matrix.Cell{During: matrix.Up, Within: metaDur(5 * time.Second), Downtime: metaDur(9 * time.Second)}
	// Up through the fault; after the revert at +60 s down 3 s, up 3 s, down
	// again, and sampling ends 2.5 s after the last failure.
	var ss []matrix.Sample
	for at := -5 * time.Second; at < 70500*time.Millisecond; at += 250 * time.Millisecond {
		down := (at >= 60*time.Second && at < 63*time.Second) || (at >= 66*time.Second && at < 68*time.Second)
		ss = append(ss, matrix.Sample{At: t0.Add(at), OK: !down, Took: 20 * time.Millisecond})
	}
	w := matrix.Window{Inject: t0, Revert: t0.Add(60 * time.Second), End: t0.Add(70500 * time.Millisecond)}
	got := matrix.EvaluateSettled("f", "lan", c, ss, w, time.Minute, 15*time.Second, 3*time.Second)
	if got.Verdict != matrix.Broken || got.RecoveryHeld || !strings.Contains(got.Why, "not recovered for good") || !strings.Contains(got.Why, "failed again") {
		t.Errorf("failing again 6 s after the revert, 2.5 s green at the end: %s: %s", got.Verdict, got.Why)
	}
	// The same, sampled on for the settle window: recovered at the last
	// failure's end, within the budget.
	for at := 70500 * time.Millisecond; at < 90*time.Second; at += 250 * time.Millisecond {
		ss = append(ss, matrix.Sample{At: t0.Add(at), OK: true, Took: 20 * time.Millisecond})
	}
	w.End = t0.Add(90 * time.Second)
	if got := matrix.EvaluateSettled("f", "lan", c, ss, w, time.Minute, 15*time.Second, 3*time.Second); got.Verdict != matrix.Held || got.TimeToRecovery == nil || *got.TimeToRecovery < 8*time.Second {
		t.Errorf("green 22 s after the last failure: %s (recovery %v): %s", got.Verdict, matrix.Since(got.TimeToRecovery), got.Why)
	}
	// One good heal after the revert is not a recovery.
	heal := []matrix.Sample{
		{At: t0.Add(-3 * time.Second), OK: true, Took: 2 * time.Second},
		{At: t0.Add(30 * time.Second), OK: true, Took: 2 * time.Second},
		{At: t0.Add(62 * time.Second), OK: true, Took: 2 * time.Second},
	}
	w.End = t0.Add(80 * time.Second)
	if got := matrix.EvaluateSettled("f", "heal", matrix.Cell{During: matrix.Any}, heal, w, time.Minute, 15*time.Second, time.Minute); got.RecoveryHeld {
		t.Errorf("one heal after the revert: recovery held: %s", got.Why)
	}
}

// matrixHead is a matrix file's head, up to its rows, with the shipped
// defaults' shape.
const matrixHead = `apiVersion: rackdrill.dev/v1alpha1
kind: ImpactMatrix
probes: [api, heal, lan, internet, apps, storage, data]
defaults: {settle: 20s, observe: 60s, recovery: 3m, upWithin: 5s, downWithin: 30s, upDowntime: 15%}
rows:
`

// Point 11, found by the third kubeadm run: a fault of several steps (two
// servers killed one after the other; keepalived and HAProxy stopped on one
// load balancer, then the other) is not in place until its last step. An
// answer while the injection is still under way (the API through the second
// server, or the VIP moved to the second balancer) is no sign that the
// path came back: server-kill-2 and cp-lb-lost api were "flapping", hence
// broken, when the machine was slow enough that the injection took 2-6 s.
// An answer after the fault is in place still is.
func TestDownCellIgnoresAnswersWhileTheInjectionRuns(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 21, 19, 43, 0, time.UTC)
	inPlace := t0.Add(6 * time.Second)
	w := matrix.Window{Inject: t0, InPlace: inPlace, Revert: t0.Add(66 * time.Second), End: t0.Add(90 * time.Second)}
	c := matrix.Cell{During: matrix.Down, Within: metaDur(30 * time.Second)}
	fast := func(int) time.Duration { return 50 * time.Millisecond }
	// 250 ms apart from -5 s: down from +0.1 s, one answer at +2.3 s (the
	// VIP on the second balancer, not yet stopped), down to the revert.
	okDuring := func(i int) bool {
		at := -5*time.Second + 250*time.Millisecond*time.Duration(i)
		return at < 0 || (at >= 2250*time.Millisecond && at < 2500*time.Millisecond) || at >= 67*time.Second
	}
	samples := requests(t0, -5*time.Second, 380, 200*time.Millisecond, fast, okDuring)
	got := judge(t, c, samples, w, time.Minute)
	if got.Verdict != matrix.Held || got.Observed != "down" {
		t.Errorf("an answer at +2.3 s of a 6 s injection: %s (%s), want held, down: %s", got.Verdict, got.Observed, got.Why)
	}
	// The same answer once the fault is in place (+7.3 s): flapping.
	okLater := func(i int) bool {
		at := -5*time.Second + 250*time.Millisecond*time.Duration(i)
		return at < 0 || (at >= 7250*time.Millisecond && at < 7500*time.Millisecond) || at >= 67*time.Second
	}
	samples = requests(t0, -5*time.Second, 380, 200*time.Millisecond, fast, okLater)
	got = judge(t, c, samples, w, time.Minute)
	if got.Verdict != matrix.Broken || got.Observed != "flapping" || !strings.Contains(got.Why, "came back up at +7.") {
		t.Errorf("an answer at +7.3 s, the fault in place since +6 s: %s (%s), want broken, flapping: %s", got.Verdict, got.Observed, got.Why)
	}
}
