package reports

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"rackdrill.dev/rackdrill/harness/matrix"
)

// Run is what the reports read of run.json.
type Run struct {
	Rack       string    `json:"rack"`
	Provider   string    `json:"provider"`
	Kubernetes string    `json:"kubernetes"`
	Suite      string    `json:"suite"`
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished"`
	Drills     []Drill   `json:"drills"`
	Checks     []Check   `json:"checks"`
}

// Drill is one drill of the chaos suite.
type Drill struct {
	Result    matrix.RowResult    `json:"result"`
	Timelines map[string][]Sample `json:"timelines"`
	SteadyAt  time.Time           `json:"steadyAt"`
	Checks    []DrillCheck        `json:"checks"`
	Dump      string              `json:"dump"`
	// Error and RevertError say why a drill did not run to its end (its
	// verdict is then matrix.Errored).
	Error       string `json:"error"`
	RevertError string `json:"revertError"`
}

// Sample is one probe sample of a timeline.
type Sample struct {
	At     time.Time     `json:"at"`
	OK     bool          `json:"ok"`
	Took   time.Duration `json:"took"`
	Detail string        `json:"detail"`
}

// DrillCheck is one of a drill's other promises (residue, clean halts).
type DrillCheck struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Check is one conformance or pre-upgrade check.
type Check struct {
	Check    string `json:"check"`
	Family   string `json:"family"`
	Field    string `json:"field"`
	Passed   bool   `json:"passed"`
	Skipped  string `json:"skipped"`
	Observed string `json:"observed"`
	Error    string `json:"error"`
}

// Load reads a run.json (or run.json.gz).
func Load(path string) (*Run, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	var run Run
	dec := json.NewDecoder(r)
	if err := dec.Decode(&run); err != nil {
		return nil, fmt.Errorf("%s: not a run.json: %w", path, err)
	}
	if run.Rack == "" {
		return nil, fmt.Errorf("%s: not a run.json: no rack", path)
	}
	return &run, nil
}

// Verdict sums the run up: broken when a cell or check failed, deviation when
// every failure is a declared deviation, held otherwise.
func (r *Run) Verdict() matrix.Verdict {
	v := matrix.Held
	for _, d := range r.Drills {
		switch d.Result.Verdict {
		case matrix.Broken, matrix.Errored:
			return matrix.Broken
		case matrix.KnownDeviation:
			v = matrix.KnownDeviation
		}
		for _, c := range d.Checks {
			if !c.OK {
				return matrix.Broken
			}
		}
	}
	for _, c := range r.Checks {
		if !c.Passed && c.Skipped == "" {
			return matrix.Broken
		}
	}
	return v
}

// Duration is the run's length.
func (r *Run) Duration() time.Duration { return r.Finished.Sub(r.Started).Round(time.Second) }
