package runrecord

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"rackdrill.dev/rackdrill/harness/matrix"
)

// APIVersion is the version of run.json this rackdrill writes. Load also reads
// the unversioned run.json of rackdrill's first version, whose fields these are.
const APIVersion = "rackdrill.dev/run/v1"

// Run is one run: the rack, when, and every drill and check with its result.
type Run struct {
	APIVersion string    `json:"apiVersion"`
	Rack       string    `json:"rack"`
	Provider   string    `json:"provider"`
	Kubernetes string    `json:"kubernetes"`
	Suite      string    `json:"suite"`
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished"`
	Drills     []Drill   `json:"drills"`
	// Checks are the conformance and pre-upgrade checks, in the order they ran.
	Checks []Check `json:"checks,omitempty"`
}

// Drill is what one drill of the chaos suite observed and how it was judged.
type Drill struct {
	Result    matrix.RowResult    `json:"result"`
	Timelines map[string][]Sample `json:"timelines"`
	// SteadyAt is when every probe had been green for the settle window.
	SteadyAt time.Time `json:"steadyAt"`
	// Checks are the drill's other promises (its effect, residue, clean halts).
	Checks []DrillCheck `json:"checks,omitempty"`
	// Details the fault reports about itself (the UPS drill's halts).
	Details json.RawMessage `json:"details,omitempty"`
	// Steps are the steps of a fault that runs its course in steps (the
	// rehearsed upgrade's), each with its start and end: the report marks
	// them on the timeline, so that a promise broken names its step.
	Steps []Step `json:"steps,omitempty"`
	// Effect is whether the fault was seen to take effect, and when.
	Effect *Effect `json:"effect,omitempty"`
	// Dump is where the artifacts of a failed drill are.
	Dump string `json:"dump,omitempty"`
	// Error and RevertError say why a drill did not run to its end (its
	// verdict is then matrix.Errored).
	Error       string `json:"error,omitempty"`
	RevertError string `json:"revertError,omitempty"`
}

// Step is one step of a drill's fault.
type Step struct {
	Name string `json:"name"`
	// Machine is the machine the step upgrades, drains or uncordons.
	Machine string    `json:"machine,omitempty"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Error   string    `json:"error,omitempty"`
}

// Sample is one probe sample of a timeline.
type Sample struct {
	At     time.Time     `json:"at"`
	OK     bool          `json:"ok"`
	Took   time.Duration `json:"took"`
	Detail string        `json:"detail,omitempty"`
	// Error is why a failed sample failed.
	Error string `json:"error,omitempty"`
}

// DrillCheck is one of a drill's promises besides the matrix's cells.
type DrillCheck struct {
	// ID names the check the same way in every run (effect, course,
	// residue): JUnit's test name, so that CI history follows it.
	ID     string `json:"id,omitempty"`
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	// Took is how long the check itself took.
	Took time.Duration `json:"took,omitempty"`
}

// Effect is how a fault's effect check went.
type Effect struct {
	What   string        `json:"what"`
	Within time.Duration `json:"within"`
	Seen   bool          `json:"seen"`
	// After is when it was first seen, from the injection.
	After time.Duration `json:"after,omitempty"`
	// Detail is the last thing seen instead, when it was not seen.
	Detail string `json:"detail,omitempty"`
	// Before is what the target showed before the fault (it answered):
	// without it an effect is no evidence.
	Before string `json:"before,omitempty"`
	// Looks are the effect's checks through the window, once it was seen
	// (every EffectRecheck): whether it was still in place, and when.
	Looks []EffectLook `json:"looks,omitempty"`
	// Undone, when set, is what came back while the fault was meant to be
	// in place (a controller restored it, a dead-man timer fired early),
	// and UndoneAfter when, from the injection: the drill fails.
	Undone      string         `json:"undone,omitempty"`
	UndoneAfter *time.Duration `json:"undoneAfter,omitempty"`
}

// EffectLook is one check of a fault's effect through the window.
type EffectLook struct {
	At     time.Time `json:"at"`
	Seen   bool      `json:"seen"`
	Detail string    `json:"detail,omitempty"`
}

// Check is one conformance or pre-upgrade check.
type Check struct {
	Check    string `json:"check"`
	Family   string `json:"family"`
	Field    string `json:"field"`
	Passed   bool   `json:"passed"`
	Skipped  string `json:"skipped,omitempty"`
	Observed string `json:"observed,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Write writes the run to path with this version's apiVersion.
func (r *Run) Write(path string) error {
	r.APIVersion = APIVersion
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// Load reads a run.json (or run.json.gz): its apiVersion first, then the run
// strictly, so that a file of another version is refused by name.
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
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Rack       string `json:"rack"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("%s: not a run.json: %w", path, err)
	}
	switch head.APIVersion {
	case APIVersion, "":
		// "": rackdrill's first version, which wrote these fields unversioned.
	default:
		return nil, fmt.Errorf("%s: unsupported apiVersion %q: this rackdrill reads %s (and the unversioned run.json before it); render it with the rackdrill that wrote it", path, head.APIVersion, APIVersion)
	}
	if head.Rack == "" {
		return nil, fmt.Errorf("%s: not a run.json: no rack", path)
	}
	var run Run
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&run); err != nil {
		return nil, fmt.Errorf("%s: run.json %s: %w", path, orUnversioned(head.APIVersion), err)
	}
	run.APIVersion = APIVersion
	return &run, nil
}

func orUnversioned(v string) string {
	if v == "" {
		return "(unversioned)"
	}
	return v
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
