package matrix

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilversion "k8s.io/apimachinery/pkg/util/version"

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

// Deviation is one known difference, and everything it excuses: a deviation
// states how much outage its mechanism allows, by when the path is back, and
// under which observed condition it happens; a cell outside any of these is
// broken.
type Deviation struct {
	Fault string `json:"fault"`
	Probe string `json:"probe"`
	// Observed is what the environment shows instead of the promise: up, down or
	// flapping. A deviation applies only when this is what was observed, so a
	// deviation that stops happening is noticed.
	Observed string `json:"observed"`
	// After bounds when a down or flapping observation may begin, from the
	// injection: not before it ("down from +50 s", the node grace, then
	// does not excuse "down from +0 s"). Within bounds a down observation's
	// onset from above ("down at once": the tunnel client died with its
	// machine). A flapping path's first failure is a matter of chance (a
	// share of the requests meets a dead endpoint) and takes no within: its
	// bounds are Until, Longest and Total.
	After  *metav1.Duration `json:"after,omitempty"`
	Within *metav1.Duration `json:"within,omitempty"`
	// Until is when, from the injection, a flapping path must be back for
	// good: the end of its last outage. Longest bounds its longest outage
	// and Total its time down in all. Each is a duration or the rack's
	// node grace plus one ("node-grace+15s"): the mechanism's own end.
	// Required for a flapping deviation.
	Until   *Bound `json:"until,omitempty"`
	Longest *Bound `json:"longest,omitempty"`
	Total   *Bound `json:"total,omitempty"`
	// When names conditions the run must have observed before the fault
	// for the deviation to apply (Conditions): "the tunnel client ran on
	// the lost machine" is checked, not assumed.
	When   []string `json:"when,omitempty"`
	Reason string   `json:"reason"`
}

// Conditions a deviation may name in When, each observed by the drill before
// it injects the fault.
const (
	// CondTunnelClientOnTarget: a pod of the tunnel client ran on a machine
	// the fault takes away.
	CondTunnelClientOnTarget = "tunnel-client-on-target"
	// CondTunnelClientElsewhere: every pod of the tunnel client ran on a
	// machine the fault leaves alone.
	CondTunnelClientElsewhere = "tunnel-client-elsewhere"
)

// Conditions are the conditions a deviation may name.
var Conditions = []string{CondTunnelClientOnTarget, CondTunnelClientElsewhere}

// DefaultNodeGrace is node-monitor-grace-period's default since Kubernetes
// 1.32 (40 s before): how long after a node's last lease renewal the
// controller-manager marks it NotReady and takes its pods out of the
// Services' endpoints.
const DefaultNodeGrace = 50 * time.Second

// NodeGraceFor is the default node grace of a Kubernetes release ("v1.31.4",
// "v1.36.3+k3s1"); DefaultNodeGrace when the release does not parse.
func NodeGraceFor(release string) time.Duration {
	v, err := utilversion.ParseGeneric(release)
	if err == nil && v.LessThan(utilversion.MajorMinor(1, 32)) {
		return 40 * time.Second
	}
	return DefaultNodeGrace
}

// Bound is a duration, or the rack's node grace plus a duration
// ("node-grace+15s"), from the injection; for until only, "revert": the
// path may stay down until the fault is reverted (its longest and total
// then bound it).
type Bound struct {
	NodeGrace bool
	Plus      time.Duration
	Revert    bool
}

const nodeGraceTerm = "node-grace"

// Of is the bound on a rack whose node grace is grace.
func (b Bound) Of(grace time.Duration) time.Duration {
	if b.NodeGrace {
		return grace + b.Plus
	}
	return b.Plus
}

func (b Bound) String() string {
	switch {
	case b.Revert:
		return "revert"
	case b.NodeGrace && b.Plus == 0:
		return nodeGraceTerm
	case b.NodeGrace && b.Plus < 0:
		return nodeGraceTerm + b.Plus.String()
	case b.NodeGrace:
		return nodeGraceTerm + "+" + b.Plus.String()
	}
	return b.Plus.String()
}

// MarshalJSON writes the bound as it is written in the overlay.
func (b Bound) MarshalJSON() ([]byte, error) { return json.Marshal(b.String()) }

// UnmarshalJSON reads "65s" or "node-grace+15s".
func (b *Bound) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("a duration (65s) or the node grace plus one (node-grace+15s): %w", err)
	}
	if strings.TrimSpace(s) == "revert" {
		*b = Bound{Revert: true}
		return nil
	}
	rest, grace := strings.CutPrefix(strings.TrimSpace(s), nodeGraceTerm)
	rest = strings.TrimSpace(rest)
	out := Bound{NodeGrace: grace}
	if rest != "" || !grace {
		if grace {
			rest = strings.TrimPrefix(rest, "+")
		}
		d, err := time.ParseDuration(strings.ReplaceAll(rest, " ", ""))
		if err != nil || (!grace && d <= 0) {
			return fmt.Errorf("%q: a positive duration (65s) or the node grace plus one (node-grace+15s)", s)
		}
		out.Plus = d
	}
	*b = out
	return nil
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
		switch dv.Observed {
		case "up":
			if dv.After != nil || dv.Within != nil || dv.Until != nil || dv.Longest != nil || dv.Total != nil {
				errs = append(errs, field.Invalid(p.Child("after"), dv.After, "an up observation has no outage: after, within, until, longest and total bound down or flapping ones"))
			}
		case "down":
			switch {
			case dv.After == nil && dv.Within == nil:
				errs = append(errs, field.Required(p.Child("after"),
					"when the observation begins after the injection (after, within, or both): an unbounded deviation would excuse an outage at any time"))
			case dv.After != nil && dv.Within != nil && dv.Within.Duration < dv.After.Duration:
				errs = append(errs, field.Invalid(p.Child("within"), dv.Within.Duration.String(), "must not be before after"))
			}
			if dv.Until != nil || dv.Longest != nil || dv.Total != nil {
				errs = append(errs, field.Invalid(p.Child("until"), dv.Until,
					"a down observation lasts until the revert: until, longest and total bound flapping ones"))
			}
		case "flapping":
			if dv.Within != nil {
				errs = append(errs, field.Invalid(p.Child("within"), dv.Within.Duration.String(),
					"a flapping path's first failure is chance (a share of requests meets a dead endpoint), so no verdict may hang on it: bound it with until, longest and total (after may say when it cannot yet begin)"))
			}
			for _, nb := range []struct {
				name string
				b    *Bound
			}{{"until", dv.Until}, {"longest", dv.Longest}, {"total", dv.Total}} {
				name := nb.name
				if nb.b == nil {
					errs = append(errs, field.Required(p.Child(name),
						"a flapping deviation bounds what it excuses: until (when the path is back for good), longest (outage) and total (time down), each a duration or node-grace+N"))
				} else if nb.b.Revert && name != "until" {
					errs = append(errs, field.Invalid(p.Child(name), nb.b.String(), "only until may be the revert: longest and total are durations"))
				}
			}
		}
		for j, c := range dv.When {
			if !slices.Contains(Conditions, c) {
				errs = append(errs, field.NotSupported(p.Child("when").Index(j), c, Conditions))
			}
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
// what was observed, when it began, no more outage than it bounds, under
// conditions the run observed, and the cell recovered within its budget. A
// deviation that matched the observation but not its bounds is named in the
// cell's reason, so that the owner sees why it did not excuse the cell. Nil
// overlays are allowed.
func (d *Deviations) Apply(r CellResult, s Settings) CellResult {
	if d == nil || r.Verdict != Broken || r.DuringHeld || !r.RecoveryHeld {
		return r
	}
	var misses []string
	for _, dv := range d.Deviations {
		if dv.Fault != r.Fault || dv.Probe != r.Probe || dv.Observed != r.Observed {
			continue
		}
		if miss := dv.misses(r, s); miss != "" {
			misses = append(misses, miss)
			continue
		}
		r.Verdict = KnownDeviation
		r.Reason = dv.Reason
		r.Why += "; excused by the declared deviation (" + dv.bounds(s) + ")"
		return r
	}
	if len(misses) > 0 {
		r.Why += "; not excused: " + strings.Join(misses, "; ")
	}
	return r
}

// misses says why dv does not excuse r, or "" when it does.
func (dv Deviation) misses(r CellResult, s Settings) string {
	var out []string
	for _, c := range dv.When {
		switch seen, ok := s.Conditions[c]; {
		case !ok:
			out = append(out, fmt.Sprintf("its condition %s was not observed before the fault", c))
		case !seen:
			out = append(out, fmt.Sprintf("its condition %s did not hold before the fault", c))
		}
	}
	if dv.Observed != "up" {
		tti := r.TimeToImpact
		switch {
		case tti == nil:
			out = append(out, "no outage to excuse")
		case dv.After != nil && *tti < dv.After.Duration:
			out = append(out, fmt.Sprintf("first failure at +%s, before its +%s", tti.Round(100*time.Millisecond), dv.After.Duration))
		case dv.Within != nil && *tti > dv.Within.Duration:
			out = append(out, fmt.Sprintf("first failure at +%s, after its +%s", tti.Round(100*time.Millisecond), dv.Within.Duration))
		}
	}
	grace := s.grace()
	if dv.Longest != nil && r.LongestOutage > dv.Longest.Of(grace) {
		out = append(out, fmt.Sprintf("longest outage %s, over its %s (%s)", r.LongestOutage.Round(100*time.Millisecond), dv.Longest.Of(grace), dv.Longest))
	}
	if dv.Total != nil && r.TotalDown > dv.Total.Of(grace) {
		out = append(out, fmt.Sprintf("down %s in all, over its %s (%s)", r.TotalDown.Round(100*time.Millisecond), dv.Total.Of(grace), dv.Total))
	}
	if dv.Until != nil && !dv.Until.Revert {
		switch until := dv.Until.Of(grace); {
		case r.BackAt == nil:
			out = append(out, fmt.Sprintf("still failing at the revert, where it must be back by +%s (%s)", until, dv.Until))
		case *r.BackAt > until:
			out = append(out, fmt.Sprintf("back for good only at +%s, after its +%s (%s)", r.BackAt.Round(100*time.Millisecond), until, dv.Until))
		}
	}
	if len(out) == 0 {
		return ""
	}
	return fmt.Sprintf("the deviation %q does not apply: %s", dv.Reason, strings.Join(out, ", "))
}

// bounds is what dv allowed, in words, for the cell's reason.
func (dv Deviation) bounds(s Settings) string {
	var out []string
	if dv.After != nil {
		out = append(out, "from +"+dv.After.Duration.String())
	}
	if dv.Within != nil {
		out = append(out, "beginning by +"+dv.Within.Duration.String())
	}
	grace := s.grace()
	switch {
	case dv.Until != nil && dv.Until.Revert:
		out = append(out, "until the revert")
	case dv.Until != nil:
		out = append(out, fmt.Sprintf("back by +%s", dv.Until.Of(grace)))
	}
	if dv.Longest != nil {
		out = append(out, fmt.Sprintf("longest outage %s", dv.Longest.Of(grace)))
	}
	if dv.Total != nil {
		out = append(out, fmt.Sprintf("%s down in all", dv.Total.Of(grace)))
	}
	if len(dv.When) > 0 {
		out = append(out, "when "+strings.Join(dv.When, ", "))
	}
	if len(out) == 0 {
		return dv.Observed
	}
	return dv.Observed + ": " + strings.Join(out, ", ")
}

// Settings are what a deviation's bounds and conditions are read against:
// the rack's settings and what the run observed before the fault.
type Settings struct {
	// NodeGrace is the rack's node-monitor-grace-period (DefaultNodeGrace
	// when zero).
	NodeGrace time.Duration
	// Conditions observed before the fault, each true or false; one not
	// observed is absent.
	Conditions map[string]bool
}

func (s Settings) grace() time.Duration {
	if s.NodeGrace > 0 {
		return s.NodeGrace
	}
	return DefaultNodeGrace
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
	// Conditions are what the run observed before the fault for the
	// deviations' when (absent: not observed).
	Conditions map[string]bool `json:"conditions,omitempty"`
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
	// a cell naming one does not count a failed request that failed
	// during them.
	Excused map[string][]Interval
	// Settings are the rack's settings and the conditions the run observed
	// before the fault, which the deviations' bounds are read against.
	Settings Settings
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
	rr := RowResult{Fault: row.Fault, Source: row.Source, Window: w, Verdict: Held, Recovery: row.Recovery.Duration, Conditions: j.Settings.Conditions}
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
		res := j.Deviations.Apply(evaluate(row.Fault, p, c, timelines[p], w, row.Recovery.Duration, row.Settled(), gap, excused), j.Settings)
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

// ErroredRow is the result of a drill that failed before its cells could be
// judged: verdict error, and every cell says it was not judged, and why.
func ErroredRow(row *Row, why string) RowResult {
	rr := RowResult{Fault: row.Fault, Source: row.Source, Verdict: Errored, Recovery: row.Recovery.Duration}
	for _, p := range Probes {
		rr.Cells = append(rr.Cells, CellResult{Fault: row.Fault, Probe: p, Promise: row.Cells[p], Verdict: Errored,
			Observed: "unobserved", Why: "not judged: " + why})
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
