package matrix_test

import (
	"strings"
	"testing"
	"time"

	"rackdrill.dev/rackdrill/harness/matrix"
)

// The rehearsal promises heal up "except while the scheduler's or the
// controller-manager's lease moves". Only what the run observed is excused:
// a failed request in flight during an observed lease move is not counted,
// every other failure is, and with no move observed the cell is judged as
// if it had no exception.
func TestExceptionExcusesOnlyWhatWasObserved(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	w := matrix.Window{Inject: at(0), Revert: at(600), End: at(640)}
	// A heal request every 5 s that takes 1 s; from +100 s three in a row
	// hang to their 30 s timeout (93 s without a heal).
	var heal []matrix.Sample
	for sent := -20.0; sent < 640; {
		failed := sent >= 100 && sent < 190
		took := 1.0
		if failed {
			took = 30
		}
		heal = append(heal, matrix.Sample{At: at(sent + took), OK: !failed, Took: time.Duration(took * float64(time.Second))})
		if failed {
			sent += took + 1
		} else {
			sent += 5
		}
	}
	move := matrix.Interval{From: at(110), To: at(170), What: "kube-controller-manager's lease moved from server-2 to server-1"}
	row := &matrix.Row{Fault: "rolling-upgrade", Source: "test", Recovery: metaDur(time.Minute), Cells: map[string]matrix.Cell{}}
	for _, p := range matrix.Probes {
		row.Cells[p] = matrix.Cell{During: matrix.Any}
	}
	cell := matrix.Cell{During: matrix.Up, Within: metaDur(60 * time.Second), Downtime: metaDur(3 * time.Minute), Except: matrix.ExceptLeaderElection}
	heals := func(c matrix.Cell, samples []matrix.Sample, excused []matrix.Interval) matrix.CellResult {
		t.Helper()
		row.Cells["heal"] = c
		rr := matrix.EvaluateRow(row, map[string][]matrix.Sample{"heal": samples}, w,
			matrix.Judging{MaxGap: map[string]time.Duration{"heal": 40 * time.Second}, Excused: map[string][]matrix.Interval{matrix.ExceptLeaderElection: excused}})
		for _, c := range rr.Cells {
			if c.Probe == "heal" {
				t.Logf("%s: %s", c.Verdict, c.Why)
				return c
			}
		}
		t.Fatal("no heal cell")
		return matrix.CellResult{}
	}

	// The first two failed inside the move (at +130 s and +161 s); the
	// third, sent during it, failed at +192 s, after the new leader was
	// in place: not the move's doing, so counted (issue 35, point 3).
	got := heals(cell, heal, []matrix.Interval{move})
	if got.Verdict != matrix.Held || got.Excused != 2 || got.Failed != 1 || !strings.Contains(got.Why, "server-2 to server-1") ||
		!strings.Contains(got.Why, "2 failed requests, 1m0s in flight") {
		t.Errorf("failures during an observed move: %s, %d excused, %d failed: %s", got.Verdict, got.Excused, got.Failed, got.Why)
	}
	if got := heals(cell, heal, nil); got.Verdict != matrix.Broken || got.Excused != 0 {
		t.Errorf("no move observed: %s, %d excused, want broken and nothing excused: %s", got.Verdict, got.Excused, got.Why)
	}
	plain := cell
	plain.Except = ""
	if got := heals(plain, heal, []matrix.Interval{move}); got.Verdict != matrix.Broken || got.Excused != 0 {
		t.Errorf("a cell without the exception: %s, %d excused, want broken: %s", got.Verdict, got.Excused, got.Why)
	}
	elsewhere := matrix.Interval{From: at(400), To: at(420), What: "kube-scheduler's lease moved"}
	if got := heals(cell, heal, []matrix.Interval{elsewhere}); got.Verdict != matrix.Broken || got.Excused != 0 {
		t.Errorf("a move away from the outage: %s, %d excused, want broken: %s", got.Verdict, got.Excused, got.Why)
	}
	// A failure before the move began is counted; the outage it starts runs
	// on through the excused requests to the next good answer.
	early := append([]matrix.Sample(nil), heal...)
	for i, s := range early {
		if s.Sent().Equal(at(95)) {
			early[i].At, early[i].OK, early[i].Took = at(99), false, 4*time.Second
		}
	}
	if got := heals(cell, early, []matrix.Interval{move}); got.Verdict != matrix.Broken || got.Failed != 2 {
		t.Errorf("a failure before the move: %s, %d failed, want broken with it counted: %s", got.Verdict, got.Failed, got.Why)
	}
}

// Issue 35, point 3: a failed request was excused when its flight merely
// touched a move: a heal sent just before the span ended and hanging 30 s
// to its timeout was not counted. Only a failure inside the span is.
func TestExceptionExcusesOnlyFailuresInsideTheMove(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	w := matrix.Window{Inject: at(0), Revert: at(300), End: at(330)}
	var heal []matrix.Sample
	for sent := -20.0; sent < 330; sent += 5 {
		heal = append(heal, matrix.Sample{At: at(sent + 1), OK: true, Took: time.Second})
	}
	// Sent at +59 s, in the last second of a 20 s move, failing at +89 s.
	heal = append(heal, matrix.Sample{At: at(89), OK: false, Took: 30 * time.Second, Err: "timed out"})
	row := &matrix.Row{Fault: "rolling-upgrade", Source: "test", Recovery: metaDur(time.Minute), Cells: map[string]matrix.Cell{}}
	for _, p := range matrix.Probes {
		row.Cells[p] = matrix.Cell{During: matrix.Any}
	}
	row.Cells["heal"] = matrix.Cell{During: matrix.Up, Within: metaDur(60 * time.Second), Downtime: metaDur(time.Minute), Except: matrix.ExceptLeaderElection}
	rr := matrix.EvaluateRow(row, map[string][]matrix.Sample{"heal": heal}, w, matrix.Judging{MaxGap: map[string]time.Duration{"heal": 40 * time.Second},
		Excused: map[string][]matrix.Interval{matrix.ExceptLeaderElection: {{From: at(40), To: at(60), What: "kube-scheduler's lease moved"}}}})
	for _, c := range rr.Cells {
		if c.Probe == "heal" && (c.Excused != 0 || c.Failed != 1) {
			t.Errorf("a heal that failed 29 s after the move ended: %d excused, %d failed, want it counted: %s", c.Excused, c.Failed, c.Why)
		}
	}
}
