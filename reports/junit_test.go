package reports

import (
	"bytes"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/runrecord"
)

// TestJUnitShape: one testsuite per drill with one testcase per matrix cell
// and drill check, one testsuite of the conformance and pre-upgrade checks,
// and counts that add up.
func TestJUnitShape(t *testing.T) {
	r := loadRecorded(t)
	var buf bytes.Buffer
	if err := WriteJUnit(&buf, r); err != nil {
		t.Fatal(err)
	}
	var got junitSuites
	if err := xml.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := len(r.Drills)
	if len(r.Checks) > 0 {
		want++
	}
	if len(got.Suites) != want {
		t.Fatalf("%d testsuites, want %d (a drill each, and the checks)", len(got.Suites), want)
	}
	total := 0
	for i, d := range r.Drills {
		s := got.Suites[i]
		if s.Name != "chaos."+d.Result.Fault || len(s.Cases) != len(d.Result.Cells)+len(d.Checks) {
			t.Errorf("suite %s: %d cases, want %d cells + %d checks", s.Name, len(s.Cases), len(d.Result.Cells), len(d.Checks))
		}
		failures := 0
		for _, c := range s.Cases {
			if c.Failure != nil {
				failures++
			}
		}
		if failures != s.Failures {
			t.Errorf("suite %s says %d failures, has %d", s.Name, s.Failures, failures)
		}
		total += len(s.Cases)
	}
	if len(r.Checks) > 0 {
		checks := got.Suites[len(got.Suites)-1]
		if len(checks.Cases) != len(r.Checks) {
			t.Errorf("checks suite: %d cases, want %d", len(checks.Cases), len(r.Checks))
		}
		total += len(checks.Cases)
	}
	if got.Tests != total {
		t.Errorf("testsuites says %d tests, has %d", got.Tests, total)
	}
}

// TestJUnitBrokenCell: a broken cell is a failure whose message is its
// verdict's reason alone, a deviation is skipped as a known deviation (the
// xfail convention CI dashboards show), and (issue 35, point 10) names stay
// the same when budgets change, the promise and budget are properties, each
// cell's time is the span it judged and each check's its own.
func TestJUnitBrokenCell(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	run := func(within time.Duration) string {
		tti, ttr, ttrLan := 120*time.Millisecond, 3400*time.Millisecond, 20*time.Second
		r := &runrecord.Run{Rack: "lab", Suite: "chaos", Started: t0, Finished: t0.Add(2 * time.Minute), Drills: []runrecord.Drill{{
			SteadyAt: t0.Add(-20 * time.Second),
			Result: matrix.RowResult{Fault: "lb-master-lost", Verdict: matrix.Broken,
				Window: matrix.Window{Inject: t0, Revert: t0.Add(60 * time.Second), End: t0.Add(87 * time.Second)},
				Cells: []matrix.CellResult{
					{Fault: "lb-master-lost", Probe: "api", Verdict: matrix.Broken, Observed: "down", Promise: matrix.Cell{During: matrix.Up, Within: metav1.Duration{Duration: within}},
						TimeToImpact: &tti, LongestOutage: time.Minute, TotalDown: 58 * time.Second, Failed: 29, Samples: 240, TimeToRecovery: &ttr, Recovered: true,
						Why: "down for 1m0s, over the 10s budget"},
					{Fault: "lb-master-lost", Probe: "lan", Verdict: matrix.KnownDeviation, Observed: "down", Promise: matrix.Cell{During: matrix.Up},
						TimeToRecovery: &ttrLan, Recovered: true, Reason: "kubelets reach the API through the VIP"},
					{Fault: "lb-master-lost", Probe: "internet", Verdict: matrix.NotApplicable, Why: "the rack has no tunnel"},
				}},
			Checks: []runrecord.DrillCheck{{ID: "effect", Name: "the fault took effect: the VIP moved", OK: true, Took: 2500 * time.Millisecond}},
		}}}
		var buf bytes.Buffer
		if err := WriteJUnit(&buf, r); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
	out := run(10 * time.Second)
	for _, want := range []string{
		`<testcase name="lb-master-lost/api" classname="chaos.lb-master-lost" time="63.400">`,
		`<failure message="down for 1m0s, over the 10s budget" type="broken">`,
		"time to impact 120ms; longest outage 1m0s; time failing 58s (29 of 240 samples); time to recovery 3.4s",
		`<testcase name="lb-master-lost/lan" classname="chaos.lb-master-lost" time="80.000">`,
		`<skipped message="known deviation: kubelets reach the API through the VIP">`,
		`<skipped message="not applicable: the rack has no tunnel">`,
		`<property name="api.budget" value="blips up to 10s">`,
		`<property name="api.promise" value="up">`,
		`<property name="lan.verdict" value="deviation">`,
		`<testcase name="lb-master-lost/effect" classname="chaos.lb-master-lost" time="2.500">`,
		`<testsuite name="chaos.lb-master-lost" tests="4" failures="1" errors="0" skipped="2" time="107.000"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("junit lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Expected") {
		t.Errorf("a failure message carries a matcher's words:\n%s", out)
	}
	names := func(x string) []string {
		var got junitSuites
		if err := xml.Unmarshal([]byte(x), &got); err != nil {
			t.Fatal(err)
		}
		var n []string
		for _, s := range got.Suites {
			for _, c := range s.Cases {
				n = append(n, c.Name)
			}
		}
		return n
	}
	if a, b := names(out), names(run(30*time.Second)); strings.Join(a, ",") != strings.Join(b, ",") {
		t.Errorf("test names change with the budget: %v, then %v", a, b)
	}
}

// TestJUnitValidatesAgainstXSD validates the recorded run's JUnit against
// the schema Jenkins reads (testdata/junit.xsd) with libxml2's xmllint; and
// checks that the validation can fail.
func TestJUnitValidatesAgainstXSD(t *testing.T) {
	xmllint := requireTool(t, "xmllint")
	var buf bytes.Buffer
	if err := WriteJUnit(&buf, loadRecorded(t)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "junit.xml")
	if err := os.WriteFile(good, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(xmllint, "--noout", "--schema", "testdata/junit.xsd", good).CombinedOutput(); err != nil {
		t.Fatalf("junit.xml does not validate: %v\n%s", err, out)
	}
	// A testcase without a name, a time that is not a number: refused.
	bad := filepath.Join(dir, "bad.xml")
	broken := strings.Replace(buf.String(), `<testcase name=`, `<testcase title=`, 1)
	broken = strings.Replace(broken, `time="`, `time="soon`, 1)
	if err := os.WriteFile(bad, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(xmllint, "--noout", "--schema", "testdata/junit.xsd", bad).CombinedOutput(); err == nil {
		t.Fatalf("the schema accepted a testcase without a name:\n%s", out)
	}
}

// A drill that errored (not steady, injection or revert failed, interrupted)
// is a failed drill: a JUnit error with both messages, the run's verdict
// broken, the report saying it. The first version wrote it as a testsuite of
// tests="0" and the page could read "held".
func TestErroredDrillIsFailedInEveryReport(t *testing.T) {
	r := &runrecord.Run{Rack: "lab", Suite: "chaos", Drills: []runrecord.Drill{{
		Result: matrix.RowResult{Fault: "nfs-lost", Source: "seed 001 §5", Verdict: matrix.Errored},
		Error:  "inject fault nfs-lost: iptables: permission denied", RevertError: "revert fault nfs-lost: docker start: no such container",
	}}}
	if v := r.Verdict(); v != matrix.Broken {
		t.Errorf("run verdict %s with an errored drill", v)
	}
	var buf bytes.Buffer
	if err := WriteJUnit(&buf, r); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		`<testsuite name="chaos.nfs-lost" tests="1" failures="0" errors="1"`,
		`<error message="the drill did not run to its end: inject fault nfs-lost: iptables: permission denied" type="error">`,
		"revert: revert fault nfs-lost: docker start: no such container",
		`<testsuites name="rackdrill chaos on lab" tests="1" failures="0" errors="1"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("junit lacks %q:\n%s", want, out)
		}
	}
	buf.Reset()
	if err := WriteHTML(&buf, r, Options{}); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	for _, want := range []string{`<span class="badge broken" id="verdict">broken</span>`, `<span class="badge error">error</span>`,
		"iptables: permission denied", "docker start: no such container", "its promises were not judged"} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// Issue 35, point 8: a drill whose revert failed was judged on its
	// samples; the page said its promises were not.
	r.Drills[0].Error = "revert fault nfs-lost: docker start: no such container"
	r.Drills[0].Result.Cells = []matrix.CellResult{{Fault: "nfs-lost", Probe: "api", Verdict: matrix.Held, Why: "stayed up"}}
	buf.Reset()
	if err := WriteHTML(&buf, r, Options{}); err != nil {
		t.Fatal(err)
	}
	if html := buf.String(); strings.Contains(html, "its promises were not judged") || !strings.Contains(html, "Its promises were judged on the samples taken") {
		t.Errorf("a revert-failed drill with judged cells: the report says otherwise")
	}
}

// Issue 35, point 5: the effect's looks through the window are drawn on the
// drill's timeline, an undone one in red.
func TestTimelineDrawsTheEffectsLooks(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	d := runrecord.Drill{Result: matrix.RowResult{Fault: "metallb-dropped", Window: matrix.Window{Inject: t0, Revert: t0.Add(60 * time.Second), End: t0.Add(80 * time.Second)}},
		Timelines: map[string][]runrecord.Sample{"api": {{At: t0.Add(-time.Second), OK: true}, {At: t0.Add(79 * time.Second), OK: true}}},
		Effect: &runrecord.Effect{What: "no MetalLB pod runs", Seen: true, After: 4 * time.Second, Looks: []runrecord.EffectLook{
			{At: t0.Add(9 * time.Second), Seen: true}, {At: t0.Add(14 * time.Second), Detail: "still running: controller-7d9f"}}}}
	svg := string(timeline(d))
	for _, want := range []string{`class="effect seen"`, `class="effect held"`, `class="effect undone"`, "undone: still running: controller-7d9f"} {
		if !strings.Contains(svg, want) {
			t.Errorf("timeline lacks %q", want)
		}
	}
}
