package matrix_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/matrix"
)

const shipped = "../../scenarios/impact-matrix.yaml"

func TestShippedMatrix(t *testing.T) {
	m, err := matrix.Load(shipped)
	if err != nil {
		t.Fatal(err)
	}
	var faults []string
	for _, r := range m.Rows {
		faults = append(faults, r.Fault)
		if r.Source == "" || r.Title == "" {
			t.Errorf("row %s has no source or title", r.Fault)
		}
		if len(r.Cells) != len(matrix.Probes) {
			t.Errorf("row %s has %d cells", r.Fault, len(r.Cells))
		}
		if r.Observe.Duration <= 0 || r.Recovery.Duration <= 0 || r.Settle.Duration <= 0 {
			t.Errorf("row %s budgets not defaulted: %+v", r.Fault, r)
		}
		for p, c := range r.Cells {
			if c.During != matrix.Any && c.Within.Duration <= 0 {
				t.Errorf("row %s cell %s has no budget", r.Fault, p)
			}
		}
	}
	// The matrix and the fault catalog name the same ten faults, in the same order.
	if !slices.Equal(faults, fault.Names) {
		t.Errorf("matrix rows %v\nfault catalog %v", faults, fault.Names)
	}
	// The architecture document's promises, spot-checked.
	for _, tc := range []struct {
		fault, probe string
		want         matrix.Expect
	}{
		{"server-kill-1", "api", matrix.Up},
		{"server-kill-2", "api", matrix.Down},
		{"server-kill-2", "apps", matrix.Up},
		{"cp-lb-lost", "heal", matrix.Down},
		{"metallb-dropped", "lan", matrix.Down},
		{"metallb-dropped", "internet", matrix.Down},
		{"tunnel-client-cut", "lan", matrix.Up},
		{"tunnel-server-lost", "internet", matrix.Down},
		{"nfs-lost", "storage", matrix.Down},
		{"nfs-lost", "lan", matrix.Up},
		{"worker-lost", "apps", matrix.Up},
		{"ups-power-loss", "api", matrix.Any},
	} {
		if got := m.Row(tc.fault).Cells[tc.probe].During; got != tc.want {
			t.Errorf("%s/%s = %s, want %s", tc.fault, tc.probe, got, tc.want)
		}
	}
	for _, env := range []string{"containers", "ssh"} {
		if _, err := matrix.LoadDeviations("../../scenarios/deviations-"+env+".yaml", m); err != nil {
			t.Errorf("shipped deviations: %v", err)
		}
	}
}

func TestInvalidMatrixFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid-*.yaml")
	if len(files) == 0 {
		t.Fatal("no invalid matrix files")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, _ := os.ReadFile(f)
			_, err := matrix.Parse(data, f)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, line := range strings.Split(string(data), "\n") {
				if w, ok := strings.CutPrefix(line, "# want: "); ok && !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// timeline builds a probe's samples every 250ms from start to end; ok says
// whether the path answered at each offset from t0 (the injection).
func timeline(t0 time.Time, from, to time.Duration, ok func(off time.Duration) bool) []matrix.Sample {
	var out []matrix.Sample
	for off := from; off < to; off += 250 * time.Millisecond {
		s := matrix.Sample{At: t0.Add(off), OK: ok(off)}
		if !s.OK {
			s.Err = "connection refused"
		}
		out = append(out, s)
	}
	return out
}

func between(a, b time.Duration) func(time.Duration) bool {
	return func(off time.Duration) bool { return off < a || off >= b }
}

func TestEvaluate(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	w := matrix.Window{Inject: t0, Revert: t0.Add(60 * time.Second), End: t0.Add(120 * time.Second)}
	up := func(d time.Duration) matrix.Cell {
		return matrix.Cell{During: matrix.Up, Within: metaDur(d)}
	}
	down := func(d time.Duration) matrix.Cell {
		return matrix.Cell{During: matrix.Down, Within: metaDur(d)}
	}
	for _, tc := range []struct {
		name     string
		cell     matrix.Cell
		ok       func(time.Duration) bool
		recovery time.Duration
		verdict  matrix.Verdict
		observed string
		tti, ttr time.Duration // -1: nil
		longest  time.Duration
		why      string
	}{
		{name: "up and never failed", cell: up(5 * time.Second), ok: between(-1, -1), recovery: time.Minute,
			verdict: matrix.Held, observed: "up", tti: -1, ttr: 0, why: "stayed up (239 samples, none failed)"},
		{name: "up with a blip within budget", cell: up(5 * time.Second), ok: between(10*time.Second, 11*time.Second), recovery: time.Minute,
			verdict: matrix.Held, observed: "up", tti: 10 * time.Second, ttr: 0, longest: time.Second, why: "longest blip 1s within the 5s budget"},
		{name: "up but out for 12s", cell: up(10 * time.Second), ok: between(2*time.Second, 14*time.Second), recovery: time.Minute,
			verdict: matrix.Broken, observed: "flapping", tti: 2 * time.Second, ttr: 0, longest: 12 * time.Second,
			why: "promised up, but was down for 12s from +2s to +14s, over the 10s budget"},
		{name: "down in time and stayed down", cell: down(30 * time.Second), ok: between(3*time.Second, 70*time.Second), recovery: time.Minute,
			verdict: matrix.Held, observed: "down", tti: 3 * time.Second, ttr: 10 * time.Second, longest: 57 * time.Second,
			why: "went down after 3s (budget 30s) and stayed down until the revert; recovered 10s after the revert"},
		{name: "promised down but stayed up", cell: down(30 * time.Second), ok: between(-1, -1), recovery: time.Minute,
			verdict: matrix.Broken, observed: "up", tti: -1, ttr: 0, why: "promised down, but stayed up for the whole fault"},
		{name: "down too late", cell: down(30 * time.Second), ok: between(40*time.Second, 61*time.Second), recovery: time.Minute,
			verdict: matrix.Broken, observed: "down", tti: 40 * time.Second, ttr: time.Second, longest: 20 * time.Second,
			why: "promised down within 30s, but went down only after 40s"},
		{name: "down then back while the fault was in place", cell: down(30 * time.Second), ok: between(3*time.Second, 20*time.Second), recovery: time.Minute,
			verdict: matrix.Broken, observed: "flapping", tti: 3 * time.Second, ttr: 0, longest: 17 * time.Second,
			why: "went down after 3s but came back up at +20s while the fault was in place"},
		{name: "recovered too slowly", cell: down(30 * time.Second), ok: between(3*time.Second, 90*time.Second), recovery: 20 * time.Second,
			verdict: matrix.Broken, observed: "down", tti: 3 * time.Second, ttr: 30 * time.Second, longest: 57 * time.Second,
			why: "recovered only after 30s, over the 20s recovery budget"},
		{name: "never recovered", cell: up(5 * time.Second), ok: between(59*time.Second, 200*time.Second), recovery: time.Minute,
			verdict: matrix.Broken, observed: "up", tti: 59 * time.Second, ttr: -1, longest: time.Second,
			why: "not recovered: still failing 59.75s after the revert (budget 1m0s): connection refused"},
		{name: "any promises nothing", cell: matrix.Cell{During: matrix.Any}, ok: between(0, 65*time.Second), recovery: time.Minute,
			verdict: matrix.Held, observed: "down", tti: 250 * time.Millisecond, ttr: 5 * time.Second, longest: 59750 * time.Millisecond,
			why: "no promise while the fault is in place (239 of 239 samples failed)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			samples := timeline(t0, -10*time.Second, 120*time.Second, tc.ok)
			got := matrix.Evaluate("f", "p", tc.cell, samples, w, tc.recovery, 3*time.Second)
			if got.Verdict != tc.verdict || got.Observed != tc.observed {
				t.Errorf("verdict %s observed %s, want %s %s (why: %s)", got.Verdict, got.Observed, tc.verdict, tc.observed, got.Why)
			}
			if !strings.Contains(got.Why, tc.why) {
				t.Errorf("why = %q, want it to contain %q", got.Why, tc.why)
			}
			checkDur(t, "time to impact", got.TimeToImpact, tc.tti)
			checkDur(t, "time to recovery", got.TimeToRecovery, tc.ttr)
			if got.LongestOutage != tc.longest {
				t.Errorf("longest outage %s, want %s", got.LongestOutage, tc.longest)
			}
		})
	}
}

func TestEvaluateNoSamples(t *testing.T) {
	t0 := time.Now()
	w := matrix.Window{Inject: t0, Revert: t0.Add(time.Minute), End: t0.Add(2 * time.Minute)}
	got := matrix.Evaluate("f", "api", matrix.Cell{During: matrix.Up, Within: metaDur(time.Second)}, nil, w, time.Minute, 3*time.Second)
	if got.Verdict != matrix.Broken || !strings.Contains(got.Why, "no sample was taken while the fault was in place") {
		t.Errorf("%+v", got)
	}
}

func TestDeviations(t *testing.T) {
	m, err := matrix.Load(shipped)
	if err != nil {
		t.Fatal(err)
	}
	d, err := matrix.LoadDeviations("testdata/deviations-lab.yaml", m)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	row := m.Row("metallb-dropped")
	w := matrix.Window{Inject: t0, Revert: t0.Add(row.Observe.Duration), End: t0.Add(row.Observe.Duration + time.Minute)}
	allUp := timeline(t0, -5*time.Second, row.Observe.Duration+time.Minute, between(-1, -1))
	tl := map[string][]matrix.Sample{}
	for _, p := range matrix.Probes {
		tl[p] = allUp
	}
	// lan stays up (declared), internet stays up too (not declared): the row is
	// broken, the lan cell is a known deviation with its reason.
	rr := matrix.EvaluateRow(row, tl, w, matrix.Judging{Deviations: d})
	cells := map[string]matrix.CellResult{}
	for _, c := range rr.Cells {
		cells[c.Probe] = c
	}
	if cells["lan"].Verdict != matrix.KnownDeviation || !strings.Contains(cells["lan"].Reason, "ARP") {
		t.Errorf("lan: %+v", cells["lan"])
	}
	if cells["internet"].Verdict != matrix.Broken {
		t.Errorf("internet: %+v", cells["internet"])
	}
	if cells["api"].Verdict != matrix.Held || rr.Verdict != matrix.Broken {
		t.Errorf("api %s, row %s", cells["api"].Verdict, rr.Verdict)
	}
	// The deviation says "up"; if lan goes down as documented, the cell simply holds.
	tl["lan"] = timeline(t0, -5*time.Second, row.Observe.Duration+time.Minute, between(2*time.Second, row.Observe.Duration+3*time.Second))
	tl["internet"] = tl["lan"]
	rr = matrix.EvaluateRow(row, tl, w, matrix.Judging{Deviations: d})
	if rr.Verdict != matrix.Held {
		t.Errorf("row with the documented behaviour: %s: %+v", rr.Verdict, rr.Cells)
	}
	// A deviation never excuses a failed recovery.
	tl["lan"] = timeline(t0, -5*time.Second, row.Observe.Duration+time.Minute, between(row.Observe.Duration-time.Second, time.Hour))
	rr = matrix.EvaluateRow(row, tl, w, matrix.Judging{Deviations: d})
	for _, c := range rr.Cells {
		if c.Probe == "lan" && c.Verdict != matrix.Broken {
			t.Errorf("unrecovered lan cell is %s", c.Verdict)
		}
	}
	// Overlays are checked against the matrix.
	if _, err := matrix.LoadDeviations("testdata/invalid-deviations.yaml", m); err == nil ||
		!strings.Contains(err.Error(), `deviations[0].fault: Not found: "metallb-gone"`) ||
		!strings.Contains(err.Error(), "deviations[0].reason: Required value") {
		t.Errorf("invalid overlay: %v", err)
	}
}

func TestUnprobedCells(t *testing.T) {
	m, _ := matrix.Load(shipped)
	row := m.Row("tunnel-client-cut")
	t0 := time.Now()
	w := matrix.Window{Inject: t0, Revert: t0.Add(time.Minute), End: t0.Add(2 * time.Minute)}
	tl := map[string][]matrix.Sample{}
	for _, p := range []string{"api", "heal", "lan", "apps", "storage", "data"} {
		tl[p] = timeline(t0, -time.Second, 2*time.Minute, between(-1, -1))
	}
	// internet is neither sampled nor declared unprobed: broken, never passed.
	if rr := matrix.EvaluateRow(row, tl, w, matrix.Judging{}); rr.Verdict != matrix.Broken {
		t.Errorf("missing probe: row %s", rr.Verdict)
	}
	rr := matrix.EvaluateRow(row, tl, w, matrix.Judging{Unprobed: map[string]string{"internet": "the rack has no tunnel"}})
	if rr.Verdict != matrix.Held || rr.Cells[3].Verdict != matrix.NotApplicable || rr.Cells[3].Why != "the rack has no tunnel" {
		t.Errorf("declared unprobed: row %s, internet %+v", rr.Verdict, rr.Cells[3])
	}
}

func TestNotApplicableRow(t *testing.T) {
	m, _ := matrix.Load(shipped)
	rr := matrix.NotApplicableRow(m.Row("lb-master-lost"), "no keepalived in k3d")
	if rr.Verdict != matrix.NotApplicable || len(rr.Cells) != 7 || rr.Cells[0].Why != "no keepalived in k3d" {
		t.Errorf("%+v", rr)
	}
}

func checkDur(t *testing.T, what string, got *time.Duration, want time.Duration) {
	t.Helper()
	switch {
	case want < 0 && got != nil:
		t.Errorf("%s = %s, want none", what, *got)
	case want >= 0 && got == nil:
		t.Errorf("%s = none, want %s", what, want)
	case want >= 0 && *got != want:
		t.Errorf("%s = %s, want %s", what, *got, want)
	}
}
