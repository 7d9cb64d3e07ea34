package framework

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
	"golang.org/x/term"

	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/probe/install"
	"rackdrill.dev/rackdrill/harness/promises"
	"rackdrill.dev/rackdrill/harness/topology"
	"rackdrill.dev/rackdrill/harness/upgrade"
)

// Flags of the safety gate, for a suite run by go test or the ginkgo CLI on a
// real rack (rackdrill run has its own flags of the same names).
var (
	yesFlag             = flag.Bool("yes", false, "real rack: inject the planned faults without asking")
	allowQuorumLossFlag = flag.Bool("allow-quorum-loss", false, "real rack: allow faults that take etcd below quorum")
	allowPowerFlag      = flag.Bool("allow-power", false, "real rack: allow the power drill")
)

// Safety is what a run on a real rack (provider ssh) must be allowed to do.
// It is applied to the chaos rows that will actually run, as ginkgo selects
// them from every filter it has (labels, focus, skip, files), so that no way
// of selecting a row bypasses it: the quorum and power gates, then the plan
// printed and confirmed.
type Safety struct {
	Yes, DryRun, AllowQuorumLoss, AllowPower bool
	// NamedOnly refuses chaos rows that Named does not list (rackdrill run
	// drills a real rack's rows only when they are named with --scenario).
	NamedOnly bool
	Named     []string
	// TopologyFile names the topology in messages.
	TopologyFile string
	// Stdin answers the confirmation (default os.Stdin); a terminal is
	// required unless Yes.
	Stdin io.Reader
	// Out receives the plan and the question (default os.Stdout).
	Out io.Writer
	// Derivation, when set, is the rack's matrix as derived from MatrixFile:
	// the plan says first how its promises differ from the document's.
	Derivation *promises.Derivation
	MatrixFile string
}

func flagSafety() *Safety {
	return &Safety{Yes: *yesFlag, AllowQuorumLoss: *allowQuorumLossFlag, AllowPower: *allowPowerFlag}
}

// ErrDryRun ends a dry run after its plan: nothing was run.
var ErrDryRun = errors.New("dry run: nothing was run on any machine")

// PlannedRow is a matrix row with what its fault would do to the rack.
type PlannedRow struct {
	// Row is the rack's row: the documented promises as this rack keeps
	// them (harness/promises).
	Row  matrix.Row `json:"row"`
	Plan fault.Plan `json:"plan"`
	// Derived says how and why the row differs from the document's.
	Derived *promises.Row `json:"derived,omitempty"`
}

// PlanRows plans the rows of the rack's matrix d whose faults are listed
// (every row when none is) on rack r under provider p.
func PlanRows(d *promises.Derivation, matrixFile string, r *topology.Rack, p topology.ProviderName, faults []string) ([]PlannedRow, error) {
	var rows []PlannedRow
	for _, row := range d.Matrix.Rows {
		if len(faults) > 0 && !slices.Contains(faults, row.Fault) {
			continue
		}
		pl, err := fault.PlanFor(row.Fault, r, p)
		if err != nil {
			return nil, fmt.Errorf("%s: rows[%s]: %w", matrixFile, row.Fault, err)
		}
		rows = append(rows, PlannedRow{Row: row, Plan: pl, Derived: d.Row(row.Fault)})
	}
	return rows, nil
}

// selectsNothing says why sc selects no spec, or "" when it selects some:
// a run that would run nothing is refused before it connects.
func (e *Env) selectsNothing(sc types.SuiteConfig, rc types.ReporterConfig) string {
	e.previewing = true
	defer func() { e.previewing = false }()
	rc.JUnitReport, rc.JSONReport, rc.TeamcityReport = "", "", ""
	report := ginkgo.PreviewSpecs("rackdrill "+e.suite, sc, rc)
	for _, s := range report.SpecReports {
		if s.LeafNodeType == types.NodeTypeIt && !s.State.Is(types.SpecStateSkipped|types.SpecStatePending) {
			return ""
		}
	}
	why := fmt.Sprintf("the selection (label filter %q", sc.LabelFilter)
	if len(sc.FocusStrings) > 0 {
		why += fmt.Sprintf(", focus %q", sc.FocusStrings)
	}
	why += ") selects no spec: nothing was run"
	if e.UpgradeTo == "" && (strings.Contains(sc.LabelFilter, "preupgrade") || strings.Contains(sc.LabelFilter, "rehearsal")) {
		why += " (the pre-upgrade checks run in rackdrill preflight --to vX.Y.Z, the upgrade rehearsal in rackdrill rehearse --to vX.Y.Z on the lab only: a run without a target release has neither)"
	}
	return why
}

// SelectedRows are the chaos rows the suite configuration sc will run (and
// the rehearsal's rolling-upgrade, when it is selected),
// computed by ginkgo itself (a preview of the spec tree: no spec runs).
func (e *Env) SelectedRows(sc types.SuiteConfig, rc types.ReporterConfig) []string {
	// A preview still runs the suite's report nodes and writes ginkgo's
	// reports: neither may replace the record of the last real run with an
	// empty one (a dry run, a refused gate).
	e.previewing = true
	defer func() { e.previewing = false }()
	rc.JUnitReport, rc.JSONReport, rc.TeamcityReport = "", "", ""
	report := ginkgo.PreviewSpecs("rackdrill "+e.suite, sc, rc)
	var out []string
	for _, s := range report.SpecReports {
		if s.State.Is(types.SpecStateSkipped|types.SpecStatePending) || s.LeafNodeType != types.NodeTypeIt {
			continue
		}
		for _, row := range e.Matrix.Rows {
			if slices.Contains(s.ContainerHierarchyTexts, row.Fault+": "+row.Title) && !slices.Contains(out, row.Fault) {
				out = append(out, row.Fault)
			}
		}
		if slices.ContainsFunc(s.ContainerHierarchyLabels, func(ls []string) bool { return slices.Contains(ls, "rehearsal") }) &&
			!slices.Contains(out, upgrade.Kind) {
			out = append(out, upgrade.Kind)
		}
	}
	return out
}

// guardRealRack applies s to the rows that will run on a real rack, before
// any connection: it plans them, gates them, prints the plan and asks. The
// rows it lets through are the only ones a drill on this rack may inject
// (Env.DrillInput refuses any other).
func (e *Env) guardRealRack(s *Safety, sc types.SuiteConfig, rc types.ReporterConfig) error {
	if e.Provider != topology.ProviderSSH {
		return nil
	}
	selected := e.SelectedRows(sc, rc)
	if s == nil {
		s = &Safety{}
	}
	if s.TopologyFile == "" {
		s.TopologyFile = e.TopologyFile
	}
	if slices.Contains(selected, upgrade.Kind) {
		return fmt.Errorf("%s is a real rack: the selection includes the upgrade rehearsal (%s), which upgrades the lab only; rackdrill never upgrades a real rack (its runbook: rackdrill preflight --to X --runbook): nothing was run on any machine",
			s.TopologyFile, upgrade.Kind)
	}
	if s.NamedOnly {
		var unnamed []string
		for _, f := range selected {
			if !slices.Contains(s.Named, f) {
				unnamed = append(unnamed, f)
			}
		}
		if len(unnamed) > 0 {
			return fmt.Errorf("%s is a real rack: name the rows to drill with --scenario (the selection also drills %s; see `rackdrill plan --topology %s`)",
				s.TopologyFile, strings.Join(unnamed, ", "), s.TopologyFile)
		}
	}
	rows := []PlannedRow{}
	if len(selected) > 0 {
		var err error
		if rows, err = PlanRows(e.Derivation, e.MatrixFile, e.Rack, e.Provider, selected); err != nil {
			return err
		}
	}
	if err := s.Gate(e.Rack, rows); err != nil {
		return err
	}
	if s.Derivation == nil {
		s.Derivation, s.MatrixFile = e.Derivation, e.MatrixFile
	}
	if err := s.Confirm(e.Rack, rows); err != nil {
		return err
	}
	e.approved = selected
	// A confirmed plan (or --yes) covers the probes' installation, a step of
	// that plan; a run that asked nothing asks before installing.
	e.installApproved = s.Yes || applicable(rows) > 0
	e.safety = s
	return nil
}

func applicable(rows []PlannedRow) int {
	n := 0
	for _, pr := range rows {
		if pr.Plan.Applicable {
			n++
		}
	}
	return n
}

// approveInstall agrees to install missing probe workloads when the run's
// confirmation covered it; otherwise it asks on a terminal, or refuses.
func (e *Env) approveInstall(why string) error {
	if e.installApproved {
		return nil
	}
	s := e.safety
	if s == nil {
		s = &Safety{}
	}
	hint := fmt.Sprintf("install them with `rackdrill probes install --topology %s`, or pass --yes; nothing was changed", e.TopologyFile)
	in := s.Stdin
	if in == nil {
		in = os.Stdin
	}
	if f, ok := in.(*os.File); ok && !term.IsTerminal(int(f.Fd())) {
		return fmt.Errorf("the probe workloads are not in place on rack %s (%s): %s", e.Rack.Metadata.Name, why, hint)
	}
	w := s.Out
	if w == nil {
		w = os.Stdout
	}
	fmt.Fprintf(w, "The probe workloads are not in place on %s (%s). Install them as the plan says? Type yes to go on: ", e.Rack.Metadata.Name, why)
	line, _ := bufio.NewReader(in).ReadString('\n')
	if strings.TrimSpace(line) != "yes" {
		return fmt.Errorf("not confirmed: %s", hint)
	}
	return nil
}

// Gate refuses, before anything runs, the faults a real rack has not
// allowed: losing etcd's quorum, powering machines off.
func (s Safety) Gate(r *topology.Rack, rows []PlannedRow) error {
	var errs []string
	for _, pr := range rows {
		pl := pr.Plan
		if !pl.Applicable {
			continue
		}
		if pl.LosesQuorum && !s.AllowQuorumLoss {
			errs = append(errs, fmt.Sprintf("%s takes etcd below quorum (the API stops accepting writes until the servers return): pass --allow-quorum-loss to drill it", pl.Fault))
		}
		if pl.Power {
			if !s.AllowPower {
				errs = append(errs, fmt.Sprintf("%s powers machines off: pass --allow-power to drill it", pl.Fault))
				continue
			}
			var missing []string
			for _, n := range pl.Targets { // every machine the drill powers off
				if node := r.Node(n); node != nil && node.Power == nil {
					missing = append(missing, n)
				}
			}
			if len(missing) > 0 {
				errs = append(errs, fmt.Sprintf("%s: no way to power on %s: document spec.nodes[].power (command: a command such as wakeonlan or ipmitool, or manual: true) for every machine", pl.Fault, strings.Join(missing, ", ")))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("refusing to start; nothing was run on any machine:\n  %s", strings.Join(errs, "\n  "))
	}
	return nil
}

// Confirm prints the plan of a run on a real rack and asks for it to go on,
// unless Yes; DryRun stops after the plan (ErrDryRun).
func (s Safety) Confirm(r *topology.Rack, rows []PlannedRow) error {
	w := s.Out
	if w == nil {
		w = os.Stdout
	}
	faults := applicable(rows)
	fmt.Fprintf(w, "Plan for the real rack %s (%d machines over SSH): the conformance checks (read-only commands), then %d fault(s), one at a time, each only once every probe is green:\n",
		r.Metadata.Name, len(r.Spec.Nodes), faults)
	fmt.Fprintf(w, "Probe workloads: installed first if namespace %s lacks them or they are not ready (looked for once connected):\n", r.Spec.Probes.Namespace)
	for _, l := range install.Plan(r) {
		fmt.Fprintf(w, "  %s\n", l)
	}
	if s.Derivation != nil {
		PrintDerivation(w, s.MatrixFile, s.Derivation)
	}
	PrintPlanRows(w, rows)
	fmt.Fprintln(w)
	if s.DryRun {
		fmt.Fprintln(w, "dry run: nothing was run on any machine")
		return ErrDryRun
	}
	if faults == 0 || s.Yes {
		return nil
	}
	in := s.Stdin
	if in == nil {
		in = os.Stdin
	}
	if f, ok := in.(*os.File); ok && !term.IsTerminal(int(f.Fd())) {
		return errors.New("refusing to inject faults into a real rack without confirmation: stdin is not a terminal, pass --yes (nothing was run on any machine)")
	}
	fmt.Fprintf(w, "Inject these faults into %s? Type yes to go on: ", r.Metadata.Name)
	line, _ := bufio.NewReader(in).ReadString('\n')
	if strings.TrimSpace(line) != "yes" {
		return errors.New("not confirmed: nothing was run on any machine")
	}
	return nil
}

// PrintDerivation says, before the rows, whether this rack's promises differ
// from the document's, and which promises of the document it cannot keep.
func PrintDerivation(w io.Writer, matrixFile string, d *promises.Derivation) {
	if !d.Differs() {
		fmt.Fprintf(w, "Promises: this rack's are the documented ones (%s).\n", matrixFile)
		return
	}
	n := 0
	for _, r := range d.Rows {
		if r.Differs() {
			n++
		}
	}
	fmt.Fprintf(w, "Promises: derived from %s and this rack's topology; %d row(s) differ (\"on this rack\", \"differs\" and NOT APPLICABLE below).\n", matrixFile, n)
	if bad := d.Unkeepable(); len(bad) > 0 {
		fmt.Fprintln(w, "Promises of the document this rack cannot keep:")
		for _, r := range bad {
			var cells []string
			for _, c := range r.Changes {
				if c.Unkeepable {
					cells = append(cells, c.Probe+" "+c.Derived)
				}
			}
			fmt.Fprintf(w, "  - %s (%s): %s\n", r.Fault, r.Source, strings.Join(cells, ", "))
		}
	}
}

// PrintPlanRows prints each row's targets, every step with where it runs, and
// what each cell expects.
func PrintPlanRows(w io.Writer, rows []PlannedRow) {
	// A multi-line command keeps its lines under the step.
	action := func(a string) string { return strings.ReplaceAll(a, "\n", "\n"+strings.Repeat(" ", 26)) }
	for i, pr := range rows {
		row, pl := pr.Row, pr.Plan
		fmt.Fprintf(w, "\n%2d. %s: %s\n", i+1, row.Fault, row.Title)
		fmt.Fprintf(w, "    source:  %s\n", row.Source)
		if len(row.Labels) > 0 {
			fmt.Fprintf(w, "    labels:  %s\n", strings.Join(row.Labels, ", "))
		}
		if !pl.Applicable {
			fmt.Fprintf(w, "    NOT APPLICABLE: %s\n", pl.Why)
			continue
		}
		if d := pr.Derived; d != nil {
			for _, why := range d.Reasons {
				fmt.Fprintf(w, "    on this rack: %s\n", why)
			}
			for _, c := range d.Changes {
				what, mark := c.Probe, ""
				if what == "" {
					what = c.What
				}
				if c.Unkeepable {
					mark = "  (the document's promise, which this rack cannot keep)"
				}
				fmt.Fprintf(w, "    differs: %-9s documented %s, this rack %s%s\n", what, c.Documented, c.Derived, mark)
			}
		}
		fmt.Fprintf(w, "    targets: %s\n", strings.Join(pl.Targets, ", "))
		if pl.LosesQuorum {
			fmt.Fprintf(w, "    QUORUM:  etcd loses its quorum (a real rack needs --allow-quorum-loss)\n")
		}
		if pl.Power {
			fmt.Fprintf(w, "    POWER:   machines power off (a real rack needs --allow-power)\n")
		}
		if pl.Choice != "" {
			fmt.Fprintf(w, "    chosen:  %s\n", pl.Choice)
		}
		for _, s := range pl.Inject {
			fmt.Fprintf(w, "    inject:  %-12s %s\n", s.Where, action(s.Action))
		}
		for _, s := range pl.Revert {
			fmt.Fprintf(w, "    revert:  %-12s %s\n", s.Where, action(s.Action))
		}
		fmt.Fprintf(w, "    budgets: settle %s, observe %s, recovery %s\n", row.Settle.Duration, row.Observe.Duration, row.Recovery.Duration)
		fmt.Fprintf(w, "    expects:")
		for _, probe := range matrix.Probes {
			fmt.Fprintf(w, " %s=%s", probe, promises.Describe(row.Cells[probe]))
		}
		fmt.Fprintln(w)
	}
}
