package reports

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"rackdrill.dev/rackdrill/harness/runrecord"
)

// TestBaselineMarksWorseRecovery: a recovery that got worse than the
// baseline's (by more than a fifth and a second) is marked in its grid cell
// and listed; one within the jitter is not.
func TestBaselineMarksWorseRecovery(t *testing.T) {
	now, base := loadRecorded(t), loadRecorded(t)
	d := &now.Drills[0].Result
	slower := *d.Cells[0].TimeToRecovery + 10*time.Second
	d.Cells[0].TimeToRecovery = &slower
	jitter := *d.Cells[1].TimeToRecovery + 500*time.Millisecond
	d.Cells[1].TimeToRecovery = &jitter
	var buf bytes.Buffer
	if err := WriteHTML(&buf, now, Options{Baseline: base}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	cell := func(probe string) string {
		i := strings.Index(out, `data-fault="`+d.Fault+`" data-probe="`+probe+`"`)
		if i < 0 {
			t.Fatalf("no grid cell %s/%s", d.Fault, probe)
		}
		return out[strings.LastIndex(out[:i], "<td"):i]
	}
	if !strings.Contains(cell(d.Cells[0].Probe), "worse") {
		t.Errorf("cell %s/%s: recovery 10s slower is not marked worse", d.Fault, d.Cells[0].Probe)
	}
	if strings.Contains(cell(d.Cells[1].Probe), "worse") {
		t.Errorf("cell %s/%s: 0.5s of jitter is marked worse", d.Fault, d.Cells[1].Probe)
	}
	if !strings.Contains(out, `id="worse"`) || strings.Count(out, `<td class="worse-note">`) != 1 {
		t.Errorf("the list of worse recoveries should have exactly the slower cell")
	}
}

// TestReportIsSelfContained: nothing in the page loads or links anything
// outside it (URLs in the checks' text are text).
func TestReportIsSelfContained(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteHTML(&buf, loadRecorded(t), Options{}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<script", "<link", "@import", "url(", "src=", `href="http`, "<iframe", "<img"} {
		if strings.Contains(buf.String(), bad) {
			t.Errorf("report.html contains %q: it must open offline", bad)
		}
	}
}

// TestStepsOnTheTimeline: a drill run in steps (the rehearsed upgrade) has
// each step marked on its timeline at its start, numbered, the failed one
// apart, and listed with its span, so that a broken promise is read against
// the step during which it broke.
func TestStepsOnTheTimeline(t *testing.T) {
	run := loadRecorded(t)
	d := &run.Drills[0]
	at := d.Result.Window.Inject
	d.Steps = []runrecord.Step{
		{Name: "kubeadm upgrade apply on server-1", Start: at.Add(time.Second), End: at.Add(20 * time.Second)},
		{Name: "drain worker-1", Start: at.Add(21 * time.Second), End: at.Add(30 * time.Second), Error: "drain worker-1: global timeout"},
	}
	var buf bytes.Buffer
	if err := WriteHTML(&buf, run, Options{}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		`<line class="step" `, `<title>step 1: kubeadm upgrade apply on server-1, +1s to +20s</title>`,
		`<line class="step failed" `, `<title>step 2: drain worker-1, +21s to +30s</title>`,
		`<td>drain worker-1</td>`, `<td>drain worker-1: global timeout</td>`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %s", want)
		}
	}
}
