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
// conformance and pre-upgrade checks. A broken cell is a failure whose
// message says promise, observation and timing; a declared deviation passes
// and says so in system-out; a cell that does not apply is skipped.
func WriteJUnit(w io.Writer, r *runrecord.Run) error {
	all := junitSuites{Name: "rackdrill " + r.Suite + " on " + r.Rack, Time: seconds(r.Finished.Sub(r.Started))}
	for _, d := range r.Drills {
		res := d.Result
		s := junitSuite{Name: "chaos." + res.Fault, Timestamp: res.Window.Inject.UTC().Format("2006-01-02T15:04:05"),
			Time: seconds(res.Window.End.Sub(d.SteadyAt)),
			Properties: []junitProperty{{"source", res.Source}, {"verdict", string(res.Verdict)},
				{"rack", r.Rack}, {"provider", r.Provider}}}
		if s.Timestamp == "0001-01-01T00:00:00" {
			s.Timestamp = r.Started.UTC().Format("2006-01-02T15:04:05")
		}
		if d.Error != "" || res.Verdict == matrix.Errored {
			text := d.Error
			if d.RevertError != "" {
				text += "\nrevert: " + d.RevertError
			}
			s.add(junitCase{Name: res.Fault + ": the drill runs to its end", Classname: "chaos." + res.Fault, Time: "0.000",
				Error: &junitFailure{Type: "error", Message: "the drill did not run to its end: " + firstLine(d.Error), Text: text}})
		}
		for _, c := range res.Cells {
			tc := junitCase{Name: fmt.Sprintf("%s/%s: promised %s", res.Fault, c.Probe, promise(c.Promise)),
				Classname: "chaos." + res.Fault, Time: seconds(res.Window.End.Sub(res.Window.Inject)), SystemOut: cellText(c)}
			switch c.Verdict {
			case matrix.Broken:
				tc.Failure = &junitFailure{Type: "broken", Message: fmt.Sprintf("%s promised %s, observed %s: %s",
					c.Probe, promise(c.Promise), c.Observed, c.Why), Text: cellText(c)}
			case matrix.NotApplicable:
				tc.Skipped = &junitSkipped{Message: c.Why}
			}
			s.add(tc)
		}
		for _, c := range d.Checks {
			tc := junitCase{Name: res.Fault + ": " + c.Name, Classname: "chaos." + res.Fault, Time: "0.000", SystemOut: c.Detail}
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
