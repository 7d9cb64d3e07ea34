package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/term"

	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/rackstate"
	"rackdrill.dev/rackdrill/harness/topology"
)

// safety is what a run on a real rack must be allowed to do.
type safety struct {
	yes, dryRun, allowQuorumLoss, allowPower bool
	// stdin answers the confirmation; a terminal is required unless yes.
	stdin io.Reader
}

// errDryRun ends a --dry-run after its plan: exit 0, nothing run.
var errDryRun = errors.New("dry run")

// planRows plans the named scenarios (every row when none is named) on rack r.
func planRows(r *topology.Rack, p topology.ProviderName, scenarios []string) ([]plannedRow, error) {
	root, err := lab.RepoRoot()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(root, DefaultMatrix)
	m, err := matrix.Load(path)
	if err != nil {
		return nil, err
	}
	var rows []plannedRow
	for _, row := range m.Rows {
		if len(scenarios) > 0 && !slices.Contains(scenarios, row.Fault) {
			continue
		}
		pl, err := fault.PlanFor(row.Fault, r, p)
		if err != nil {
			return nil, fmt.Errorf("%s: rows[%s]: %w", path, row.Fault, err)
		}
		rows = append(rows, plannedRow{Row: row, Plan: pl})
	}
	return rows, nil
}

// gate refuses, before anything runs, the faults a real rack has not allowed:
// losing etcd's quorum, powering machines off.
func (s safety) gate(r *topology.Rack, rows []plannedRow) error {
	var errs []string
	for _, pr := range rows {
		pl := pr.Plan
		if !pl.Applicable {
			continue
		}
		if pl.LosesQuorum && !s.allowQuorumLoss {
			errs = append(errs, fmt.Sprintf("%s takes etcd below quorum (the API stops accepting writes until the servers return): pass --allow-quorum-loss to drill it", pl.Fault))
		}
		if pl.Power {
			if !s.allowPower {
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

// confirm prints the plan of a run on a real rack and asks for it to go on,
// unless --yes; --dry-run stops after the plan (errDryRun).
func (s safety) confirm(w io.Writer, r *topology.Rack, rows []plannedRow) error {
	faults := 0
	for _, pr := range rows {
		if pr.Plan.Applicable {
			faults++
		}
	}
	fmt.Fprintf(w, "Plan for the real rack %s (%d machines over SSH): the conformance checks (read-only commands), then %d fault(s), one at a time, each only once every probe is green:\n",
		r.Metadata.Name, len(r.Spec.Nodes), faults)
	if r.Spec.Kubernetes.Distribution == topology.DistributionK3s {
		fmt.Fprintf(w, "K3s ships no etcdctl: rackdrill copies its own to %s on each server that has none, to read etcd's members and leader.\n", rackstate.OwnEtcdctl)
	}
	printPlanRows(w, rows)
	fmt.Fprintln(w)
	if s.dryRun {
		fmt.Fprintln(w, "dry run: nothing was run on any machine")
		return errDryRun
	}
	if faults == 0 || s.yes {
		return nil
	}
	in := s.stdin
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
