package matrix

import (
	"fmt"
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
// cell into a known one; it never excuses a failed recovery.
type Deviations struct {
	APIVersion  string      `json:"apiVersion"`
	Kind        string      `json:"kind"`
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
	Reason   string `json:"reason"`
}

// LoadDeviations reads an overlay and checks it against m.
func LoadDeviations(path string, m *Matrix) (*Deviations, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read deviations: %w", err)
	}
	var d Deviations
	if err := strictyaml.DecodeFile(data, path, &d); err != nil {
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
		if m.Row(dv.Fault) == nil {
			errs = append(errs, field.NotFound(p.Child("fault"), dv.Fault))
		}
		if !slices.Contains(Probes, dv.Probe) {
			errs = append(errs, field.NotSupported(p.Child("probe"), dv.Probe, Probes))
		}
		if !slices.Contains([]string{"up", "down", "flapping"}, dv.Observed) {
			errs = append(errs, field.NotSupported(p.Child("observed"), dv.Observed, []string{"up", "down", "flapping"}))
		}
		if dv.Reason == "" {
			errs = append(errs, field.Required(p.Child("reason"), "why this environment differs from the document"))
		}
	}
	if len(errs) > 0 {
		return nil, &FileError{File: path, Errors: errs}
	}
	return &d, nil
}

// Apply turns a broken cell into a deviation when the overlay declares exactly
// what was observed. Nil overlays are allowed.
func (d *Deviations) Apply(r CellResult) CellResult {
	if d == nil || r.Verdict != Broken || !r.Recovered {
		return r
	}
	for _, dv := range d.Deviations {
		if dv.Fault == r.Fault && dv.Probe == r.Probe && dv.Observed == r.Observed {
			r.Verdict = KnownDeviation
			r.Reason = dv.Reason
			return r
		}
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

// EvaluateRow judges every cell of row against the timelines (by probe name),
// applies the overlay and sums up: the row holds when no cell is broken.
// unprobed names the probes this rack does not have (no tunnel: no internet
// probe), each with its reason; their cells are not applicable. A probe that is
// neither sampled nor listed there is broken: a missing probe never passes.
func EvaluateRow(row *Row, timelines map[string][]Sample, w Window, dev *Deviations, unprobed map[string]string) RowResult {
	rr := RowResult{Fault: row.Fault, Source: row.Source, Window: w, Verdict: Held, Recovery: row.Recovery.Duration}
	for _, p := range Probes {
		c := row.Cells[p]
		if why, ok := unprobed[p]; ok {
			rr.Cells = append(rr.Cells, CellResult{Fault: row.Fault, Probe: p, Promise: c, Verdict: NotApplicable, Why: why})
			continue
		}
		res := dev.Apply(Evaluate(row.Fault, p, c, timelines[p], w, row.Recovery.Duration))
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
