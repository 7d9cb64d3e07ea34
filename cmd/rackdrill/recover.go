package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/cluster/providers"
	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/rackstate"
	"rackdrill.dev/rackdrill/harness/topology"
)

// legacyLedgerDir is where earlier versions of rackdrill journaled live
// faults: under the artifacts folder of the directory the run started in.
// recover still reads it.
func legacyLedgerDir(artifacts string) string { return filepath.Join(artifacts, "ledger") }

// ledgerToRecover is one fault ledger recover looks at, and where the steady
// state of its rack is kept.
type ledgerToRecover struct {
	rack   string // "" for the legacy ledger
	ledger *fault.Ledger
	steady string
}

// ledgersToRecover is every ledger recover reads: the named rack's when
// --topology was given, else every rack's in the state folder, and the legacy
// one under the artifacts folder when it exists. It prints where it looked.
func ledgersToRecover(cmd *cobra.Command, g *globalOptions, out io.Writer) ([]ledgerToRecover, error) {
	var racks []string
	if g.topologyGiven {
		r, err := loadRack(g.topology, cmd.ErrOrStderr())
		if err != nil {
			return nil, err
		}
		racks = []string{r.Metadata.Name}
		d, _ := fault.RackDir(r.Metadata.Name)
		fmt.Fprintf(out, "looking for the faults of rack %s (%s) in %s\n", r.Metadata.Name, g.topology, d)
	} else {
		known, root, err := fault.KnownRacks()
		if err != nil {
			return nil, err
		}
		racks = known
		if len(known) == 0 {
			fmt.Fprintf(out, "looking for fault ledgers in %s: no rack has one\n", root)
		} else {
			fmt.Fprintf(out, "looking for fault ledgers in %s: racks %s\n", root, strings.Join(known, ", "))
		}
	}
	var ls []ledgerToRecover
	for _, rack := range racks {
		l, err := fault.LedgerFor(rack)
		if err != nil {
			return nil, err
		}
		d, _ := fault.RackDir(rack)
		ls = append(ls, ledgerToRecover{rack: rack, ledger: l, steady: rackstate.SteadyFile(d)})
	}
	if _, err := os.Stat(legacyLedgerDir(g.artifacts)); err == nil {
		l, err := fault.OpenLedger(legacyLedgerDir(g.artifacts))
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "also reading %s, where an older rackdrill kept its ledger\n", l.Dir())
		ls = append(ls, ledgerToRecover{ledger: l, steady: rackstate.SteadyFile(g.artifacts)})
	}
	return ls, nil
}

func newRecoverCommand(g *globalOptions) *cobra.Command {
	var timeout, residueTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "recover",
		Short: "Revert every fault a killed or crashed run left in the fault ledger",
		Long: `recover reads the fault ledgers and reverts every fault they hold, oldest
first, clearing each one that reverted. A fault held by a run that is still alive
on this machine is left to that run (stop it with Ctrl-C: it reverts).

Each rack has one ledger, in the state folder ($RACKDRILL_STATE_DIR, else
$XDG_STATE_HOME/rackdrill, else ~/.local/state/rackdrill: racks/<rack>/ledger),
so recover finds it from any directory. With --topology it reads that rack's
ledger only; without, every rack's. It says where it looked and what it found.

When the run that left the faults had kept its steady state (racks/<rack>/
steady-state.json), recover then waits until the rack is as it was before the
fault (machines, VIP holder, etcd members, workloads, no harness leftovers) and
prints what still differs; that is exit status 1.`,
		Example: `  rackdrill recover
  rackdrill recover --topology my-rack.yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			out := cmd.OutOrStdout()
			ls, err := ledgersToRecover(cmd, g, out)
			if err != nil {
				return err
			}
			found := 0
			var errs []error
			for _, lr := range ls {
				n, err := recoverLedger(ctx, cmd, g, lr, residueTimeout)
				found += n
				if err != nil {
					errs = append(errs, err)
				}
			}
			if found == 0 && len(errs) == 0 {
				fmt.Fprintln(out, "nothing to recover: no ledger holds a fault")
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "give up after this long")
	cmd.Flags().DurationVar(&residueTimeout, "residue-timeout", 5*time.Minute, "how long the rack may take to look as it did before the fault")
	return cmd
}

// recoverLedger reverts the faults of one ledger and checks the residue;
// it returns how many faults the ledger held.
func recoverLedger(ctx context.Context, cmd *cobra.Command, g *globalOptions, lr ledgerToRecover, residueTimeout time.Duration) (int, error) {
	out := cmd.OutOrStdout()
	l := lr.ledger
	entries, err := l.Entries()
	if err != nil {
		return len(entries), err
	}
	name := lr.rack
	if name == "" {
		name = "(older ledger)"
	}
	if len(entries) == 0 {
		fmt.Fprintf(out, "rack %s: no fault in %s\n", name, l.Dir())
		return 0, nil
	}
	fmt.Fprintf(out, "rack %s: %d fault(s) in %s\n", name, len(entries), l.Dir())
	log := newLogger(cmd.ErrOrStderr(), g.verbosity)
	// Faults are rebuilt against the provider they were injected through;
	// the entries say which rack and provider that was.
	for _, e := range entries[1:] {
		if e.Rack != entries[0].Rack || e.Provider != entries[0].Provider {
			return len(entries), fmt.Errorf("the ledger %s mixes racks (%s/%s and %s/%s): recover them one at a time", l.Dir(), entries[0].Provider, entries[0].Rack, e.Provider, e.Rack)
		}
	}
	r, p, err := recoverProvider(cmd, g, entries[0])
	if err != nil {
		return len(entries), err
	}
	defer providers.Close(p)
	server := ""
	if entries[0].Topology != "" {
		server = r.APIServerURL()
	}
	lister, kube := cluster.NodeLister(p), fault.KubeFrom(p, server)
	results, err := fault.Recover(ctx, l, fault.Env{Nodes: lister, Kube: kube, Log: log})
	for _, r := range results {
		status := "reverted"
		if r.Err != nil {
			status = "FAILED: " + r.Err.Error()
		}
		fmt.Fprintf(out, "%s  %s (injected %s by pid %d on rack %s): %s\n",
			r.Entry.ID, r.Entry.Fault, r.Entry.InjectedAt.Format(time.RFC3339), r.Entry.PID, r.Entry.Rack, status)
	}
	if err != nil {
		return len(entries), fmt.Errorf("some faults are still in place (kept in %s): %w", l.Dir(), err)
	}
	return len(entries), residueAfterRecover(ctx, out, lr.steady, lister, kube, residueTimeout)
}

// residueAfterRecover compares the rack with the steady state the interrupted
// run kept before its fault, waiting for the rack to settle.
func residueAfterRecover(ctx context.Context, out io.Writer, path string, nodes cluster.NodeLister, kube fault.KubeClient, limit time.Duration) error {
	steady, err := rackstate.LoadSteady(path)
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintln(out, "no steady state was kept by that run: the residue check is left to the next run")
		return nil
	}
	if err != nil {
		return err
	}
	r, err := loadRack(steady.Topology, io.Discard)
	if err != nil {
		return fmt.Errorf("residue check: the steady state %s names topology %s: %w", path, steady.Topology, err)
	}
	fmt.Fprintf(out, "residue check: waiting up to %s for rack %s to be as it was before %s (%s)\n",
		limit, r.Metadata.Name, steady.Fault, steady.Taken.Format(time.RFC3339))
	take := func(ctx context.Context) (rackstate.Snapshot, error) {
		ns, err := nodes.Nodes(ctx)
		if err != nil {
			return rackstate.Snapshot{}, err
		}
		cs, err := kube(ctx)
		if err != nil {
			return rackstate.Snapshot{}, err
		}
		return rackstate.Take(ctx, r, ns, cs)
	}
	diff, err := rackstate.WaitSame(ctx, steady.Snapshot, limit, take)
	if err != nil {
		diff = append(diff, "state of the rack: "+err.Error())
	}
	if len(diff) > 0 {
		for _, d := range diff {
			fmt.Fprintln(out, "  "+d)
		}
		return &failedError{msg: fmt.Sprintf("rack %s is not as it was before %s", r.Metadata.Name, steady.Fault)}
	}
	fmt.Fprintf(out, "residue check passed: rack %s is as it was before %s\n", r.Metadata.Name, steady.Fault)
	return os.Remove(path)
}

// recoverProvider reaches the rack a ledger entry's fault was injected into,
// through the provider it was injected through: the rack is loaded from the
// topology file the run recorded. A lab entry without one (an older ledger) is
// found by its rack name alone, the label its machines carry.
func recoverProvider(cmd *cobra.Command, g *globalOptions, e fault.Entry) (*topology.Rack, cluster.Provider, error) {
	var r *topology.Rack
	if e.Topology != "" {
		var err error
		if r, err = loadRack(e.Topology, cmd.ErrOrStderr()); err != nil {
			return nil, nil, fmt.Errorf("ledger entry %s: %w", e.ID, err)
		}
		if r.Metadata.Name != e.Rack {
			return nil, nil, fmt.Errorf("ledger entry %s: its fault was injected into rack %s, but %s now describes rack %s", e.ID, e.Rack, e.Topology, r.Metadata.Name)
		}
	} else if p := topology.ProviderName(e.Provider); p == topology.ProviderContainers || p == "" {
		r = &topology.Rack{}
		r.Metadata.Name = e.Rack
	} else {
		return nil, nil, fmt.Errorf("ledger entry %s: no topology recorded for the %s rack %s", e.ID, e.Provider, e.Rack)
	}
	r.Spec.Provider = topology.ProviderName(e.Provider)
	p, err := providerFor(cmd, g, r)
	return r, p, err
}
