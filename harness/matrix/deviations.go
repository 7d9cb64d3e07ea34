package matrix

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"os"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"rackdrill.dev/rackdrill/harness/internal/strictyaml"
)

// Deviations is an environment's overlay on the matrix: the cells where that
// environment is known to differ from the document, each with its reason
// (MetalLB layer 2 behind a cached ARP entry, kube-proxy short-circuiting the
// LoadBalancer IP from inside the cluster). A declared deviation turns a broken
// cell into a known one only when exactly the declared observation was made,
// at the declared time; it never excuses a late or failed recovery, nor a
// cell without evidence.
type Deviations struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Environment is the provider (containers, k3d, ssh) or the rack's name
	// this overlay describes; a run elsewhere refuses it.
	Environment string      `json:"environment"`
	Deviations  []Deviation `json:"deviations"`
}

// Deviation is one known difference.
type Deviation struct {
	Fault string `json:"fault"`
	Probe string `json:"probe"`
	// Observed is what the environment shows instead of the promise: up, down or
	// flapping. A deviation applies only when this is what was observed, so a
	// deviation that stops happening is noticed.
	Observed string `json:"observed"`
	// After and Within bound when a down or flapping observation begins, from
	// the injection: no earlier than After, no later than Within (when set).
	// "Down from +50 s" (the node grace) then does not excuse "down from
	// +0 s". One of them is required for a down or flapping deviation.
	After  *metav1.Duration `json:"after,omitempty"`
	Within *metav1.Duration `json:"within,omitempty"`
	Reason string           `json:"reason"`
}

// LoadDeviations reads an overlay and checks it against m.
func LoadDeviations(path string, m *Matrix) (*Deviations, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read deviations: %w", err)
	}
	return ParseDeviations(data, path, m)
}

// Promised removes the deviations that matrix m (a rack's derived matrix)
// already promises: the observation they declare is m's cell itself (seed
// 000's shape promises lan down when the VIP is gone, which the lab's overlay
// declared as a deviation of the documented "up"). It returns them, so that
// the run can say so. The overlay is validated against the documented matrix
// it was written for; on a rack whose promises differ, a deviation must not
// excuse what is now the promise, nor be refused for it.
func (d *Deviations) Promised(m *Matrix) []Deviation {
	var promised []Deviation
	d.Deviations = slices.DeleteFunc(d.Deviations, func(dv Deviation) bool {
		row := m.Row(dv.Fault)
		if row != nil && string(row.Cells[dv.Probe].During) == dv.Observed {
			promised = append(promised, dv)
			return true
		}
		return false
	})
	return promised
}

// ParseDeviations is LoadDeviations for bytes.
func ParseDeviations(data []byte, name string, m *Matrix) (*Deviations, error) {
	var d Deviations
	if err := strictyaml.DecodeFile(data, name, &d); err != nil {
		return nil, err
	}
	var errs field.ErrorList
	if d.APIVersion != APIVersion {
		errs = append(errs, field.NotSupported(field.NewPath("apiVersion"), d.APIVersion, []string{APIVersion}))
	}
	if d.Kind != "Deviations" {
		errs = append(errs, field.NotSupported(field.NewPath("kind"), d.Kind, []string{"Deviations"}))
	}
	if d.Environment == "" {
		errs = append(errs, field.Required(field.NewPath("environment"), "the provider or rack this overlay describes"))
	}
	for i, dv := range d.Deviations {
		p := field.NewPath("deviations").Index(i)
		row := m.Row(dv.Fault)
		if row == nil {
			errs = append(errs, field.NotFound(p.Child("fault"), dv.Fault))
		}
		if !slices.Contains(Probes, dv.Probe) {
			errs = append(errs, field.NotSupported(p.Child("probe"), dv.Probe, Probes))
		}
		if !slices.Contains([]string{"up", "down", "flapping"}, dv.Observed) {
			errs = append(errs, field.NotSupported(p.Child("observed"), dv.Observed, []string{"up", "down", "flapping"}))
		} else if row != nil && string(row.Cells[dv.Probe].During) == dv.Observed {
			errs = append(errs, field.Invalid(p.Child("observed"), dv.Observed,
				"is the promise itself: a deviation declares what differs from the matrix's cell"))
		}
		switch {
		case dv.Observed == "up" && (dv.After != nil || dv.Within != nil):
			errs = append(errs, field.Invalid(p.Child("after"), dv.After, "an up observation has no start: after and within bound down or flapping ones"))
		case dv.Observed != "up" && dv.After == nil && dv.Within == nil:
			errs = append(errs, field.Required(p.Child("after"),
				"when the observation begins after the injection (after, within, or both): an unbounded deviation would excuse an outage at any time"))
		case dv.After != nil && dv.Within != nil && dv.Within.Duration < dv.After.Duration:
			errs = append(errs, field.Invalid(p.Child("within"), dv.Within.Duration.String(), "must not be before after"))
		}
		if dv.Reason == "" {
			errs = append(errs, field.Required(p.Child("reason"), "why this environment differs from the document"))
		}
	}
	if len(errs) > 0 {
		return nil, &FileError{File: name, Errors: errs}
	}
	return &d, nil
}

// For checks that the overlay describes this run: its environment is the
// run's provider or the rack's name. An overlay written for the lab says
// nothing about a real rack.
func (d *Deviations) For(provider, rack string) error {
	if d == nil || d.Environment == provider || d.Environment == rack {
		return nil
	}
	return fmt.Errorf("deviations overlay for environment %q cannot judge this run (provider %s, rack %s): pass one written for it with --deviations",
		d.Environment, provider, rack)
}

// Apply turns a broken cell into a deviation when the overlay declares exactly
// what was observed, when it was observed, and the cell recovered within its
// budget. Nil overlays are allowed.
func (d *Deviations) Apply(r CellResult) CellResult {
	if d == nil || r.Verdict != Broken || r.DuringHeld || !r.RecoveryHeld {
		return r
	}
	for _, dv := range d.Deviations {
		if dv.Fault != r.Fault || dv.Probe != r.Probe || dv.Observed != r.Observed {
			continue
		}
		if dv.Observed != "up" {
			if r.TimeToImpact == nil {
				continue
			}
			if dv.After != nil && *r.TimeToImpact < dv.After.Duration {
				continue
			}
			if dv.Within != nil && *r.TimeToImpact > dv.Within.Duration {
				continue
			}
		}
		r.Verdict = KnownDeviation
		r.Reason = dv.Reason
		return r
	}
	return r
}

// RowResult is the evaluation of one fault row.
type RowResult struct {
	Fault   string       `json:"fault"`
	Source  string       `json:"source"`
	Window  Window       `json:"window"`
	Cells   []CellResult `json:"cells"`
	Verdict Verdict      `json:"verdict"`
	// Recovery is the row's budget: every probe up again this long after the revert.
	Recovery time.Duration `json:"recovery,omitempty"`
}

// Judging is what a row is judged with besides its timelines.
type Judging struct {
	// Deviations is the environment's overlay (nil: none).
	Deviations *Deviations
	// Unprobed names the probes this rack does not have (no tunnel: no
	// internet probe), each with its reason; their cells are not applicable.
	Unprobed map[string]string
	// MaxGap is, per probe, the longest time it may go without a request in
	// flight and still count as watched; DefaultMaxGap for a probe not named.
	MaxGap map[string]time.Duration
	// Excused are the spans the run observed, by exception (Cell.Except):
	// a cell naming one does not count a failed request in flight during
	// them.
	Excused map[string][]Interval
}

// Interval is a span the run observed, and what happened in it.
type Interval struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	What string    `json:"what"`
}

// DefaultMaxGap is the evidence allowance of a probe whose sampler did not
// say its own.
const DefaultMaxGap = 3 * time.Second

// EvaluateRow judges every cell of row against the timelines (by probe name),
// applies the overlay and sums up: the row holds when no cell is broken. A
// probe that is neither sampled nor listed as unprobed is broken: a missing
// probe never passes.
func EvaluateRow(row *Row, timelines map[string][]Sample, w Window, j Judging) RowResult {
	rr := RowResult{Fault: row.Fault, Source: row.Source, Window: w, Verdict: Held, Recovery: row.Recovery.Duration}
	for _, p := range Probes {
		c := row.Cells[p]
		if why, ok := j.Unprobed[p]; ok {
			rr.Cells = append(rr.Cells, CellResult{Fault: row.Fault, Probe: p, Promise: c, Verdict: NotApplicable, Why: why})
			continue
		}
		gap := j.MaxGap[p]
		if gap <= 0 {
			gap = DefaultMaxGap
		}
		var excused []Interval
		if c.Except != "" {
			excused = j.Excused[c.Except]
		}
		res := j.Deviations.Apply(evaluate(row.Fault, p, c, timelines[p], w, row.Recovery.Duration, gap, excused))
		rr.Cells = append(rr.Cells, res)
		switch {
		case res.Verdict == Broken:
			rr.Verdict = Broken
		case res.Verdict == KnownDeviation && rr.Verdict == Held:
			rr.Verdict = KnownDeviation
		}
	}
	return rr
}

// NotApplicableRow is the result for a row whose fault does not exist in this
// environment (keepalived in k3d): reported, never counted as held.
func NotApplicableRow(row *Row, why string) RowResult {
	rr := RowResult{Fault: row.Fault, Source: row.Source, Verdict: NotApplicable}
	for _, p := range Probes {
		rr.Cells = append(rr.Cells, CellResult{Fault: row.Fault, Probe: p, Promise: row.Cells[p], Verdict: NotApplicable, Why: why})
	}
	return rr
}

// Since is a helper for reports: d as seconds with one decimal, or "-" for nil.
func Since(d *time.Duration) string {
	if d == nil {
		return "-"
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}
