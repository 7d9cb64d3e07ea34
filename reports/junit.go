package reports

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"

	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/runrecord"
)

// The JUnit shape Jenkins (junit-10.xsd) and GitHub's test reporters read.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Skipped   *junitSkipped `xml:"skipped,omitempty"`
	Error     *junitFailure `xml:"error,omitempty"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitSkipped struct {
	Message string `xml:"message,attr"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// WriteJUnit writes the run as JUnit XML: a testsuite per drill with a
// testcase per matrix cell and per drill check, then a testsuite of the
// conformance and pre-upgrade checks.
//
// Names are stable from run to run, so that CI history follows each test:
// a cell is <fault>/<probe>, a drill check <fault>/<check id>, whatever the
// budgets; the promise, the budget and the verdict of each cell are the
// suite's properties (<probe>.promise, <probe>.budget, <probe>.verdict), as
// Jenkins's schema has no properties on a testcase. A broken cell is a
// failure whose message is its verdict's reason; a declared deviation is
// skipped with the message "known deviation: <reason>", the convention of
// pytest's expected failures (xfail), which Jenkins, GitLab and GitHub's
// test reporters show as skipped, never as passed; a cell that does not
// apply is skipped too. Each cell's time is the span it judged, from the
// injection to its recovery (or the end of sampling), and each check's its
// own duration.
func WriteJUnit(w io.Writer, r *runrecord.Run) error {
	all := junitSuites{Name: "rackdrill " + r.Suite + " on " + r.Rack, Time: seconds(r.Finished.Sub(r.Started))}
	for _, d := range r.Drills {
		res := d.Result
		s := junitSuite{Name: "chaos." + res.Fault, Timestamp: res.Window.Inject.UTC().Format("2006-01-02T15:04:05"),
			Time: seconds(max(0, res.Window.End.Sub(d.SteadyAt))),
			Properties: []junitProperty{{"source", res.Source}, {"verdict", string(res.Verdict)},
				{"rack", r.Rack}, {"provider", r.Provider}}}
		if s.Timestamp == "0001-01-01T00:00:00" {
			s.Timestamp = r.Started.UTC().Format("2006-01-02T15:04:05")
		}
		if d.SteadyAt.IsZero() {
			s.Time = "0.000"
		}
		if d.Error != "" || res.Verdict == matrix.Errored {
			text := d.Error
			if d.RevertError != "" {
				text += "\nrevert: " + d.RevertError
			}
			s.add(junitCase{Name: res.Fault + "/drill", Classname: "chaos." + res.Fault, Time: "0.000",
				Error: &junitFailure{Type: "error", Message: "the drill did not run to its end: " + firstLine(d.Error), Text: text}})
		}
		for _, c := range res.Cells {
			s.Properties = append(s.Properties, junitProperty{c.Probe + ".promise", string(c.Promise.During)},
				junitProperty{c.Probe + ".budget", budget(c.Promise)}, junitProperty{c.Probe + ".verdict", string(c.Verdict)})
			tc := junitCase{Name: res.Fault + "/" + c.Probe, Classname: "chaos." + res.Fault, Time: seconds(judgedSpan(res, c)), SystemOut: cellText(c)}
			switch c.Verdict {
			case matrix.Broken:
				tc.Failure = &junitFailure{Type: "broken", Message: c.Why, Text: cellText(c)}
			case matrix.Errored:
				tc.Error = &junitFailure{Type: "error", Message: c.Why, Text: cellText(c)}
			case matrix.KnownDeviation:
				tc.Skipped = &junitSkipped{Message: "known deviation: " + c.Reason}
			case matrix.NotApplicable:
				tc.Skipped = &junitSkipped{Message: "not applicable: " + c.Why}
			}
			s.add(tc)
		}
		for _, c := range d.Checks {
			id := c.ID
			if id == "" {
				id = c.Name // a record written before checks had ids
			}
			tc := junitCase{Name: res.Fault + "/" + id, Classname: "chaos." + res.Fault, Time: seconds(c.Took), SystemOut: c.Name + ": " + c.Detail}
			if !c.OK {
				tc.Failure = &junitFailure{Type: "check", Message: c.Name + ": " + c.Detail, Text: c.Detail}
			}
			s.add(tc)
		}
		all.add(s)
	}
	if len(r.Checks) > 0 {
		s := junitSuite{Name: "checks", Timestamp: r.Started.UTC().Format("2006-01-02T15:04:05"), Time: "0.000"}
		for _, c := range r.Checks {
			tc := junitCase{Name: fmt.Sprintf("%s [%s]", c.Check, c.Field), Classname: c.Family, Time: "0.000", SystemOut: c.Observed}
			switch {
			case c.Skipped != "":
				tc.Skipped = &junitSkipped{Message: c.Skipped}
			case !c.Passed:
				tc.Failure = &junitFailure{Type: c.Family, Message: firstLine(c.Error), Text: c.Error}
			}
			s.add(tc)
		}
		all.add(s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(all); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// judgedSpan is the span a cell judged: from the injection to its recovery
// for good, or to the end of sampling when it did not recover.
func judgedSpan(res matrix.RowResult, c matrix.CellResult) time.Duration {
	w := res.Window
	if w.Inject.IsZero() {
		return 0
	}
	if c.TimeToRecovery != nil && c.Recovered {
		return w.Revert.Sub(w.Inject) + *c.TimeToRecovery
	}
	return max(0, w.End.Sub(w.Inject))
}

// budget is a cell's budget in words, without its expectation.
func budget(c matrix.Cell) string {
	switch {
	case c.During == matrix.Up && c.Within.Duration > 0 && c.Downtime.Duration > 0:
		return fmt.Sprintf("blips up to %s, at most %s down in all", c.Within.Duration, c.Downtime.Duration)
	case c.During == matrix.Up && c.Within.Duration > 0:
		return fmt.Sprintf("blips up to %s", c.Within.Duration)
	case c.During == matrix.Down && c.Within.Duration > 0:
		return fmt.Sprintf("down within %s", c.Within.Duration)
	}
	return "none"
}

func (s *junitSuite) add(tc junitCase) {
	s.Tests++
	switch {
	case tc.Error != nil:
		s.Errors++
	case tc.Failure != nil:
		s.Failures++
	case tc.Skipped != nil:
		s.Skipped++
	}
	s.Cases = append(s.Cases, tc)
}

func (a *junitSuites) add(s junitSuite) {
	a.Tests += s.Tests
	a.Failures += s.Failures
	a.Errors += s.Errors
	a.Suites = append(a.Suites, s)
}

func promise(c matrix.Cell) string {
	if c.Within.Duration > 0 {
		if c.During == matrix.Up {
			if c.Downtime.Duration > 0 {
				return fmt.Sprintf("%s (blips up to %s, at most %s failing in all)", c.During, c.Within.Duration, c.Downtime.Duration)
			}
			return fmt.Sprintf("%s (blips up to %s)", c.During, c.Within.Duration)
		}
		return fmt.Sprintf("%s within %s", c.During, c.Within.Duration)
	}
	return string(c.During)
}

// cellText is a cell's timing in a line: what an SRE reads first.
func cellText(c matrix.CellResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "verdict %s; observed %s; time to impact %s; longest outage %s; time failing %s (%d of %d samples); time to recovery %s",
		c.Verdict, orDash(c.Observed), durp(c.TimeToImpact), short(c.LongestOutage), short(c.TotalDown), c.Failed, c.Samples, durp(c.TimeToRecovery))
	if c.Why != "" {
		fmt.Fprintf(&b, "; %s", c.Why)
	}
	if c.Reason != "" {
		fmt.Fprintf(&b, "; declared deviation: %s", c.Reason)
	}
	return b.String()
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func durp(d *time.Duration) string {
	if d == nil {
		return "–"
	}
	return short(*d)
}

// short writes a duration as people read it: 1.6s, 42ms, 1m53s.
func short(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
