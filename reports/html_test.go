package reports

import (
	"bytes"
	"strings"
	"testing"
	"time"
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
