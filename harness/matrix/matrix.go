package matrix

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"rackdrill.dev/rackdrill/harness/internal/strictyaml"
)

// APIVersion of the matrix and deviation files.
const APIVersion = "rackdrill.dev/v1alpha1"

// Probes are the matrix's columns, in the order the architecture document lists
// them.
var Probes = []string{"api", "heal", "lan", "internet", "apps", "storage", "data"}

// Expect is what a probe must show while a fault is in place.
type Expect string

const (
	// Up: the path stays available; a blip no longer than Cell.Within is allowed
	// and measured.
	Up Expect = "up"
	// Down: the path must become unavailable within Cell.Within and stay so until
	// the fault is reverted.
	Down Expect = "down"
	// Any: the document promises nothing while the fault is in place (a power
	// drill, or the data probe, which is judged after recovery).
	Any Expect = "any"
)

// Cell is one promise: what one probe shows under one fault.
type Cell struct {
	During Expect          `json:"during"`
	Within metav1.Duration `json:"within,omitempty"`
	// Downtime bounds an up cell's total time spent in failed requests while
	// the fault is in place (time-weighted: a request that hangs 2 s to its
	// timeout is 2 s): a path that keeps failing in short bursts is not up,
	// however short each burst. It is honoured as written, even below
	// Within (the total then binds before the longest blip does). Default:
	// defaults.upDowntime, a share of the row's observation window.
	Downtime metav1.Duration `json:"downtime,omitempty"`
	// Note qualifies the promise as the document does ("stateless apps").
	Note string `json:"note,omitempty"`
	// Except names what an up cell does not promise through, when the run
	// observed it (ExceptLeaderElection): a failed request in flight while
	// it happened is not counted. Nothing is excused that the run did not
	// observe.
	Except string `json:"except,omitempty"`
}

// ExceptLeaderElection is a control-plane component's leader lease moving:
// from its holder's last renewal to the new holder's acquisition, the
// scheduler (or the controller-manager) has no leader.
const ExceptLeaderElection = "leader-election"

// Excepts are the exceptions a cell may name.
var Excepts = []string{ExceptLeaderElection}

// Row is one fault and everything the document promises about it.
type Row struct {
	Fault  string `json:"fault"`
	Title  string `json:"title"`
	Source string `json:"source"`
	// Labels select the row in suites: disruptive, quorum, power.
	Labels []string        `json:"labels,omitempty"`
	Cells  map[string]Cell `json:"cells"`
	// Settle is how long every probe must be green before injecting.
	Settle metav1.Duration `json:"settle,omitempty"`
	// Observe is how long the fault stays in place.
	Observe metav1.Duration `json:"observe,omitempty"`
	// Recovery is how long every probe may take to be up again after the revert.
	Recovery metav1.Duration `json:"recovery,omitempty"`
	// RecoverySettle is how long every probe must stay green, with at least
	// MinSettleSamples answers, for its recovery to count as for good.
	RecoverySettle metav1.Duration `json:"recoverySettle,omitempty"`
}

// Defaults fill what a row or cell leaves out: cluster-api's "default" wait
// intervals, so that no spec carries a literal timeout.
type Defaults struct {
	Settle   metav1.Duration `json:"settle"`
	Observe  metav1.Duration `json:"observe"`
	Recovery metav1.Duration `json:"recovery"`
	// UpWithin is the longest blip an up cell allows by default.
	UpWithin metav1.Duration `json:"upWithin"`
	// DownWithin is how soon a down cell must go down by default.
	DownWithin metav1.Duration `json:"downWithin"`
	// RecoverySettle is how long every probe must stay green after the
	// revert for its recovery to count (DefaultRecoverySettle when unset):
	// a path that fails again inside it has not recovered.
	RecoverySettle metav1.Duration `json:"recoverySettle,omitempty"`
	// UpDowntime is the total time an up cell's requests may spend failing
	// while the fault is in place, by default: a share of the row's
	// observation window ("15%") or a duration ("10s"). It is never raised
	// to the cell's within: a cell that allows one long blip says so with
	// its own downtime.
	UpDowntime Budget `json:"upDowntime"`
}

// Matrix is the documented impact matrix.
type Matrix struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Probes     []string `json:"probes"`
	Defaults   Defaults `json:"defaults"`
	Rows       []Row    `json:"rows"`
}

// Row returns the row for fault, or nil.
func (m *Matrix) Row(fault string) *Row {
	for i := range m.Rows {
		if m.Rows[i].Fault == fault {
			return &m.Rows[i]
		}
	}
	return nil
}

// Load reads and validates a matrix file; after it every row has its budgets and
// every cell its Within filled from the defaults.
func Load(path string) (*Matrix, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read impact matrix: %w", err)
	}
	return Parse(data, path)
}

// Parse is Load for bytes.
func Parse(data []byte, name string) (*Matrix, error) {
	var m Matrix
	if err := strictyaml.DecodeFile(data, name, &m); err != nil {
		return nil, err
	}
	if errs := m.validate(); len(errs) > 0 {
		return nil, &FileError{File: name, Errors: errs}
	}
	m.applyDefaults()
	return &m, nil
}

// FileError is every problem of one matrix or deviations file.
type FileError = strictyaml.FileError

func (m *Matrix) validate() field.ErrorList {
	var errs field.ErrorList
	if m.APIVersion != APIVersion {
		errs = append(errs, field.NotSupported(field.NewPath("apiVersion"), m.APIVersion, []string{APIVersion}))
	}
	if m.Kind != "ImpactMatrix" {
		errs = append(errs, field.NotSupported(field.NewPath("kind"), m.Kind, []string{"ImpactMatrix"}))
	}
	if !slices.Equal(m.Probes, Probes) {
		errs = append(errs, field.Invalid(field.NewPath("probes"), m.Probes, fmt.Sprintf("must be %v: the harness has exactly these probes", Probes)))
	}
	dp := field.NewPath("defaults")
	if !m.Defaults.UpDowntime.valid() {
		errs = append(errs, field.Required(dp.Child("upDowntime"), "a positive duration (10s) or a share of the observation window from 1% to 100% (15%)"))
	}
	for name, d := range map[string]metav1.Duration{"settle": m.Defaults.Settle, "observe": m.Defaults.Observe,
		"recovery": m.Defaults.Recovery, "upWithin": m.Defaults.UpWithin, "downWithin": m.Defaults.DownWithin} {
		if d.Duration <= 0 {
			errs = append(errs, field.Required(dp.Child(name), "a positive duration"))
		}
	}
	if len(m.Rows) == 0 {
		errs = append(errs, field.Required(field.NewPath("rows"), ""))
	}
	seen := map[string]bool{}
	for i, r := range m.Rows {
		rp := field.NewPath("rows").Index(i)
		if r.Fault == "" {
			errs = append(errs, field.Required(rp.Child("fault"), ""))
		} else if seen[r.Fault] {
			errs = append(errs, field.Duplicate(rp.Child("fault"), r.Fault))
		}
		seen[r.Fault] = true
		if r.Source == "" {
			errs = append(errs, field.Required(rp.Child("source"), "the document and section that promise this row"))
		}
		for _, l := range r.Labels {
			if !slices.Contains([]string{"disruptive", "quorum", "power"}, l) {
				errs = append(errs, field.NotSupported(rp.Child("labels"), l, []string{"disruptive", "quorum", "power"}))
			}
		}
		for _, p := range Probes {
			if _, ok := r.Cells[p]; !ok {
				errs = append(errs, field.Required(rp.Child("cells").Key(p), "every row has a cell for every probe"))
			}
		}
		cellNames := make([]string, 0, len(r.Cells))
		for p := range r.Cells {
			cellNames = append(cellNames, p)
		}
		slices.Sort(cellNames)
		for _, p := range cellNames {
			c := r.Cells[p]
			cp := rp.Child("cells").Key(p)
			if !slices.Contains(Probes, p) {
				errs = append(errs, field.NotSupported(cp, p, Probes))
			}
			if c.During != Up && c.During != Down && c.During != Any {
				errs = append(errs, field.NotSupported(cp.Child("during"), c.During, []Expect{Up, Down, Any}))
			}
			if c.Within.Duration < 0 {
				errs = append(errs, field.Invalid(cp.Child("within"), c.Within.Duration.String(), "must not be negative"))
			}
			if c.Downtime.Duration < 0 {
				errs = append(errs, field.Invalid(cp.Child("downtime"), c.Downtime.Duration.String(), "must not be negative"))
			}
			if c.Except != "" && !slices.Contains(Excepts, c.Except) {
				errs = append(errs, field.NotSupported(cp.Child("except"), c.Except, Excepts))
			}
			if c.Except != "" && c.During != Up {
				errs = append(errs, field.Invalid(cp.Child("except"), c.Except, "only an up cell has exceptions"))
			}
			if c.Downtime.Duration > 0 && c.During != Up {
				errs = append(errs, field.Invalid(cp.Child("downtime"), c.Downtime.Duration.String(), "only an up cell has a downtime budget"))
			}
		}
	}
	return errs
}

func (m *Matrix) applyDefaults() {
	fill(&m.Defaults.RecoverySettle, metav1.Duration{Duration: DefaultRecoverySettle})
	for i := range m.Rows {
		r := &m.Rows[i]
		fill(&r.Settle, m.Defaults.Settle)
		fill(&r.Observe, m.Defaults.Observe)
		fill(&r.Recovery, m.Defaults.Recovery)
		fill(&r.RecoverySettle, m.Defaults.RecoverySettle)
		for p, c := range r.Cells {
			r.Cells[p] = m.Defaults.Cell(c, r.Observe.Duration)
		}
	}
}

// Cell is c with what it leaves out filled from d, in a row observed for
// observe: an up cell's blip and downtime, a down cell's onset.
func (d Defaults) Cell(c Cell, observe time.Duration) Cell {
	switch c.During {
	case Up:
		fill(&c.Within, d.UpWithin)
		fill(&c.Downtime, metav1.Duration{Duration: d.UpDowntime.Of(observe)})
	case Down:
		fill(&c.Within, d.DownWithin)
	}
	return c
}

// Settled is how long every probe must stay green after the revert for the
// row's recovery to count: its own, or DefaultRecoverySettle for a row built
// without the matrix's defaults.
func (r *Row) Settled() time.Duration {
	if r.RecoverySettle.Duration > 0 {
		return r.RecoverySettle.Duration
	}
	return DefaultRecoverySettle
}

// DefaultRecoverySettle is the settle window after the revert when the
// matrix states none: long enough for several answers of every probe (the
// heal probe answers every few seconds), short beside a recovery budget.
const DefaultRecoverySettle = 15 * time.Second

// MinSettleSamples is how many answers of a probe the recovery's settle
// window must hold: one good answer is no proof that a path stays up.
const MinSettleSamples = 3

func fill(d *metav1.Duration, def metav1.Duration) {
	if d.Duration == 0 {
		*d = def
	}
}

// Budget is a duration ("10s") or a share of a window ("15%"): the default
// total an up cell may spend failing is stated as a share of the time the
// fault is in place, so that a longer observation does not excuse more of
// it than a shorter one.
type Budget struct {
	Duration time.Duration
	// Percent of the window, when set (1 to 100); Duration is then unused.
	Percent int
}

// Of is the budget for a window of length w.
func (b Budget) Of(w time.Duration) time.Duration {
	if b.Percent > 0 {
		return w * time.Duration(b.Percent) / 100
	}
	return b.Duration
}

func (b Budget) valid() bool {
	return (b.Percent > 0 && b.Percent <= 100) || (b.Percent == 0 && b.Duration > 0)
}

func (b Budget) String() string {
	if b.Percent > 0 {
		return fmt.Sprintf("%d%%", b.Percent)
	}
	return b.Duration.String()
}

// MarshalJSON writes the budget as it is written in the matrix.
func (b Budget) MarshalJSON() ([]byte, error) { return json.Marshal(b.String()) }

// UnmarshalJSON reads "15%" or "10s".
func (b *Budget) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("a duration (10s) or a share of the window (15%%): %w", err)
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 || n > 100 {
			return fmt.Errorf("share %q: a whole percentage from 1%% to 100%%", s)
		}
		*b = Budget{Percent: n}
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q: a duration (10s) or a share of the window (15%%)", s)
	}
	*b = Budget{Duration: d}
	return nil
}
