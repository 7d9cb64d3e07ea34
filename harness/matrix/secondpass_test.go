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
	ok := func(i int) bool { at := 250 * time.Millisecond * time.Duration(i); return at < 10*time.Second || at >= 35*time.Second }
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
	m, err := matrix.Parse([]byte(`apiVersion: rackdrill.dev/v1alpha1
kind: ImpactMatrix
probes: [api, heal, lan, internet, apps, storage, data]
defaults: {settle: 20s, observe: 60s, recovery: 3m, upWithin: 5s, downWithin: 30s, upDowntime: 15%}
rows:
  - fault: worker-lost
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
