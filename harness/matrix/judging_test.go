package matrix_test

import (
	"strings"
	"testing"
	"time"

	"rackdrill.dev/rackdrill/harness/matrix"
)

// These cases are the ways the first version said "held" when the rack broke
// its promise (issue 15, "Judging the timelines strictly"). Each timeline is
// synthetic but shaped like what the lab recorded.

// requests builds the samples of a probe whose requests run back to back from
// t0+from: each takes took(i) and answers ok(i) at its end, the next starting
// gap later.
func requests(t0 time.Time, from time.Duration, n int, gap time.Duration, took func(i int) time.Duration, ok func(i int) bool) []matrix.Sample {
	var out []matrix.Sample
	at := t0.Add(from)
	for i := 0; i < n; i++ {
		d := took(i)
		at = at.Add(d)
		s := matrix.Sample{At: at, OK: ok(i), Took: d}
		if !s.OK {
			s.Err = "context deadline exceeded"
		}
		out = append(out, s)
		at = at.Add(gap)
	}
	return out
}

func judge(t *testing.T, c matrix.Cell, samples []matrix.Sample, w matrix.Window, recovery time.Duration) matrix.CellResult {
	t.Helper()
	rr := matrix.Evaluate("f", "lan", c, samples, w, recovery, 3*time.Second)
	t.Logf("%s: %s", rr.Verdict, rr.Why)
	return rr
}

// worker-lost on the lab: 27 of the first 44 LAN requests failed, each
// hanging 2 s to its timeout, the longest run of failures 10 s: "held"
// against a 30 s blip budget, though the path was failing for most of the
// fault. The total time spent failing is judged too.
func TestUpCellJudgesTotalTimeFailing(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	w := matrix.Window{Inject: t0, Revert: t0.Add(60 * time.Second), End: t0.Add(120 * time.Second)}
	// Pattern of 5: four failures of 2 s (8 s down), then one quick success.
	ok := func(i int) bool { return i >= 44 || i%5 == 4 }
	took := func(i int) time.Duration {
		if ok(i) {
			return 50 * time.Millisecond
		}
		return 2 * time.Second
	}
	samples := requests(t0, -5*time.Second, 400, 200*time.Millisecond, took, ok)
	c := matrix.Cell{During: matrix.Up, Within: metaDur(30 * time.Second), Downtime: metaDur(30 * time.Second)}
	got := judge(t, c, samples, w, time.Minute)
	if got.Verdict != matrix.Broken || got.Observed != "flapping" {
		t.Fatalf("verdict %s observed %s, want broken flapping: %s", got.Verdict, got.Observed, got.Why)
	}
	if got.TotalDown < 40*time.Second || got.TotalDown > 60*time.Second {
		t.Errorf("total time failing %s, want the window but for the quick successes (about 58 s)", got.TotalDown)
	}
	if !strings.Contains(got.Why, "in all while the fault was in place") || !strings.Contains(got.Why, "over the 30s budget") {
		t.Errorf("why = %q", got.Why)
	}
	// The same pattern, failures of 50 ms: a few blips, well within.
	short := requests(t0, -5*time.Second, 600, 200*time.Millisecond, func(int) time.Duration { return 50 * time.Millisecond },
		func(i int) bool { return i%50 != 49 || i > 250 })
	if got := judge(t, c, short, w, time.Minute); got.Verdict != matrix.Held {
		t.Errorf("short blips: %s: %s", got.Verdict, got.Why)
	}
}

// tunnel-server-lost's power cut on the K3s lab: the VPS refused the
// Internet path's requests in a millisecond, 81 failed, and the time spent
// failing came to 0.1 s though the path was down for 20 s at a stretch. A
// probe that fails fast is down from its failed request until the next one
// that succeeds, not only for the failed request's flight: a path refusing
// four seconds in every five is down for most of the fault.
func TestUpCellTotalDownCountsFastFailures(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	w := matrix.Window{Inject: t0, Revert: t0.Add(60 * time.Second), End: t0.Add(120 * time.Second)}
	// Every 250 ms a request answered in 2 ms; from +0 s, in every 5 s, 4 s
	// of refusals (16 requests) then 1 s of successes.
	ok := func(i int) bool { return i < 40 || i >= 280 || (i-40)%20 >= 16 }
	samples := requests(t0, -10*time.Second, 400, 248*time.Millisecond, func(int) time.Duration { return 2 * time.Millisecond }, ok)
	c := matrix.Cell{During: matrix.Up, Within: metaDur(5 * time.Second), Downtime: metaDur(10 * time.Second)}
	got := judge(t, c, samples, w, time.Minute)
	if got.LongestOutage > 5*time.Second {
		t.Fatalf("longest outage %s: the case needs blips within the 5 s budget", got.LongestOutage)
	}
	if got.TotalDown < 40*time.Second || got.TotalDown > 50*time.Second {
		t.Errorf("total time down %s, want about 48 s (4 s of every 5)", got.TotalDown)
	}
	if got.Verdict != matrix.Broken || got.Observed != "flapping" {
		t.Errorf("verdict %s observed %s, want broken flapping: %s", got.Verdict, got.Observed, got.Why)
	}
}

// A sampler that stalls (a goroutine starved, a laptop asleep) has no
// evidence for the stall: the cell fails, it does not pass.
func TestSamplerStallIsNoEvidence(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	w := matrix.Window{Inject: t0, Revert: t0.Add(60 * time.Second), End: t0.Add(120 * time.Second)}
	all := timeline(t0, -10*time.Second, 120*time.Second, between(-1, -1))
	var stalled []matrix.Sample
	for _, s := range all {
		if off := s.At.Sub(t0); off > 20*time.Second && off < 40*time.Second {
			continue
		}
		stalled = append(stalled, s)
	}
	got := judge(t, matrix.Cell{During: matrix.Up, Within: metaDur(5 * time.Second)}, stalled, w, time.Minute)
	if got.Verdict != matrix.Broken || !strings.Contains(got.Why, "no evidence") {
		t.Fatalf("a 20 s gap in the samples: %s: %s", got.Verdict, got.Why)
	}
	if got.LongestGap < 19*time.Second {
		t.Errorf("longest gap %s", got.LongestGap)
	}
	// The samples stop before the revert: no evidence for the end of the fault.
	var early []matrix.Sample
	for _, s := range all {
		if s.At.Sub(t0) < 30*time.Second {
			early = append(early, s)
		}
	}
	if got := judge(t, matrix.Cell{During: matrix.Up, Within: metaDur(5 * time.Second)}, early, w, time.Minute); got.Verdict != matrix.Broken ||
		!strings.Contains(got.Why, "no evidence") {
		t.Errorf("samples that end mid-fault: %s: %s", got.Verdict, got.Why)
	}
}

// heal answers OK when a replacement pod ran within its 30 s timeout; a
// replacement that took 29 s is not "up within 10 s".
func TestSlowAnswerCountsAgainstTheBudget(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	w := matrix.Window{Inject: t0, Revert: t0.Add(60 * time.Second), End: t0.Add(120 * time.Second)}
	took := func(i int) time.Duration {
		if i == 3 {
			return 29 * time.Second
		}
		return 2 * time.Second
	}
	samples := requests(t0, -10*time.Second, 30, time.Second, took, func(int) bool { return true })
	got := judge(t, matrix.Cell{During: matrix.Up, Within: metaDur(10 * time.Second)}, samples, w, time.Minute)
	if got.Verdict != matrix.Broken || !strings.Contains(got.Why, "29s") {
		t.Fatalf("a 29 s heal against a 10 s budget: %s: %s", got.Verdict, got.Why)
	}
}

// A down cell is credited only with an outage the fault caused: a probe
// already failing when the fault went in proves nothing about the fault.
func TestDownCellNeedsGreenAtInjection(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	w := matrix.Window{Inject: t0, Revert: t0.Add(60 * time.Second), End: t0.Add(120 * time.Second)}
	c := matrix.Cell{During: matrix.Down, Within: metaDur(30 * time.Second)}
	already := timeline(t0, -10*time.Second, 120*time.Second, between(-5*time.Second, 62*time.Second))
	got := judge(t, c, already, w, time.Minute)
	if got.Verdict != matrix.Broken || !strings.Contains(got.Why, "not green when the fault went in") {
		t.Fatalf("down before the fault: %s: %s", got.Verdict, got.Why)
	}
	// No sample in the seconds before the fault: not known to be green.
	var late []matrix.Sample
	for _, s := range timeline(t0, -10*time.Second, 120*time.Second, between(2*time.Second, 62*time.Second)) {
		if off := s.At.Sub(t0); off < -8*time.Second || off > 0 {
			late = append(late, s)
		}
	}
	if got := judge(t, c, late, w, time.Minute); got.Verdict != matrix.Broken || !strings.Contains(got.Why, "not green when the fault went in") {
		t.Errorf("no recent sample before the fault: %s: %s", got.Verdict, got.Why)
	}
	// Green at injection, then down: held.
	good := timeline(t0, -10*time.Second, 120*time.Second, between(2*time.Second, 62*time.Second))
	if got := judge(t, c, good, w, time.Minute); got.Verdict != matrix.Held {
		t.Errorf("the fault's own outage: %s: %s", got.Verdict, got.Why)
	}
}

// A sample is stamped with the time its answer came: a request that hung to
// its 2 s timeout began 2 s before it, and that is where the outage begins.
func TestOutageStartsWhenTheFailingRequestWasSent(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	w := matrix.Window{Inject: t0, Revert: t0.Add(60 * time.Second), End: t0.Add(120 * time.Second)}
	ok := func(i int) bool { return i < 20 || i >= 25 }
	took := func(i int) time.Duration {
		if ok(i) {
			return 10 * time.Millisecond
		}
		return 2 * time.Second
	}
	samples := requests(t0, 0, 200, 240*time.Millisecond, took, ok)
	got := judge(t, matrix.Cell{During: matrix.Up, Within: metaDur(10 * time.Second)}, samples, w, time.Minute)
	// Five 2 s requests back to back with 240 ms between: 10 s + 5 gaps.
	if got.LongestOutage < 11*time.Second || got.Verdict != matrix.Broken {
		t.Errorf("longest outage %s, verdict %s: %s", got.LongestOutage, got.Verdict, got.Why)
	}
}

func deviationsFor(t *testing.T, m *matrix.Matrix, yaml string) (*matrix.Deviations, error) {
	t.Helper()
	return matrix.ParseDeviations([]byte("apiVersion: rackdrill.dev/v1alpha1\nkind: Deviations\nenvironment: containers\ndeviations:\n"+yaml), "dev.yaml", m)
}

func TestDeviationsAreStrict(t *testing.T) {
	m, err := matrix.Load(shipped)
	if err != nil {
		t.Fatal(err)
	}
	// Refused at load: a deviation whose observation is the promise itself.
	if _, err := deviationsFor(t, m, "  - {fault: nfs-lost, probe: storage, observed: down, after: 0s, reason: it is down}\n"); err == nil ||
		!strings.Contains(err.Error(), "deviations[0].observed") || !strings.Contains(err.Error(), "is the promise itself") {
		t.Errorf("observed = promise: %v", err)
	}
	// Refused at load: a down or flapping deviation without its timing.
	if _, err := deviationsFor(t, m, "  - {fault: cp-lb-lost, probe: lan, observed: down, reason: node grace}\n"); err == nil ||
		!strings.Contains(err.Error(), "deviations[0].after") {
		t.Errorf("unbounded down deviation: %v", err)
	}
	if _, err := deviationsFor(t, m, "  - {fault: cp-lb-lost, probe: lan, observed: down, after: 40s, reason: node grace}\n"); err != nil {
		t.Errorf("bounded deviation refused: %v", err)
	}

	row := m.Row("cp-lb-lost")
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	w := matrix.Window{Inject: t0, Revert: t0.Add(row.Observe.Duration), End: t0.Add(12 * time.Minute)}
	d, err := deviationsFor(t, m, "  - {fault: cp-lb-lost, probe: lan, observed: down, after: 40s, reason: 'kubelets behind the VIP, node grace 40s'}\n")
	if err != nil {
		t.Fatal(err)
	}
	eval := func(ok func(time.Duration) bool) matrix.CellResult {
		return d.Apply(matrix.Evaluate(row.Fault, "lan", row.Cells["lan"], timeline(t0, -10*time.Second, 12*time.Minute, ok), w, row.Recovery.Duration, 3*time.Second), matrix.Settings{})
	}
	// Down from +50 s: what the deviation declares.
	if got := eval(between(50*time.Second, row.Observe.Duration+5*time.Second)); got.Verdict != matrix.KnownDeviation {
		t.Errorf("down from +50s: %s: %s", got.Verdict, got.Why)
	}
	// Down from +0 s: not the declared observation.
	if got := eval(between(0, row.Observe.Duration+5*time.Second)); got.Verdict != matrix.Broken {
		t.Errorf("down from +0s excused by a deviation of +40s: %s: %s", got.Verdict, got.Why)
	}
	// Recovered 8 minutes after the revert, budget 3: never excused.
	if got := eval(between(50*time.Second, row.Observe.Duration+8*time.Minute)); got.Verdict != matrix.Broken || !strings.Contains(got.Why, "recovery budget") {
		t.Errorf("late recovery excused: %s: %s", got.Verdict, got.Why)
	}
}

func TestDeviationsMatchTheEnvironment(t *testing.T) {
	m, err := matrix.Load(shipped)
	if err != nil {
		t.Fatal(err)
	}
	d, err := matrix.LoadDeviations("../../scenarios/deviations-containers.yaml", m)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.For("ssh", "seed001"); err == nil || !strings.Contains(err.Error(), `environment "containers"`) {
		t.Errorf("the lab's deviations applied to a real rack: %v", err)
	}
	if err := d.For("containers", "lab"); err != nil {
		t.Errorf("the lab's deviations on the lab: %v", err)
	}
}
