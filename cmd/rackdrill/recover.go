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
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/cluster/containers"
	sshprovider "rackdrill.dev/rackdrill/harness/cluster/ssh"
	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/rackstate"
	"rackdrill.dev/rackdrill/harness/topology"
)

// ledgerDir is where a run journals its live faults, under the artifacts folder.
func ledgerDir(artifacts string) string { return filepath.Join(artifacts, "ledger") }

func newRecoverCommand(g *globalOptions) *cobra.Command {
	var timeout, residueTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "recover",
		Short: "Revert every fault a killed or crashed run left in the fault ledger",
		Long: `recover reads the fault ledger (<artifacts>/ledger) and reverts every fault it
holds, oldest first, clearing each one that reverted. A fault held by a run that is
still alive on this machine is left to that run (stop it with Ctrl-C: it reverts).

When the run that left the faults had kept its steady state (<artifacts>/
steady-state.json), recover then waits until the rack is as it was before the
fault (machines, VIP holder, etcd members, workloads, no harness leftovers) and
prints what still differs; that is exit status 1.`,
		Example: `  rackdrill recover
  rackdrill recover --artifacts /var/tmp/nightly`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			l, err := fault.OpenLedger(ledgerDir(g.artifacts))
			if err != nil {
				return err
			}
			entries, err := l.Entries()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(entries) == 0 {
				fmt.Fprintf(out, "nothing to recover: the fault ledger %s is empty\n", l.Dir())
				return nil
			}
			log := newLogger(cmd.ErrOrStderr(), g.verbosity)
			// Faults are rebuilt against the provider they were injected through;
			// the entries say which rack and provider that was.
			var lister cluster.NodeLister
			var kube fault.KubeClient
			switch topology.ProviderName(entries[0].Provider) {
			case topology.ProviderContainers, "":
				p := containers.NewProvider(entries[0].Rack, containers.WithLogger(log))
				lister, kube = p, fault.KubeFrom(p, "")
			case topology.ProviderSSH:
				// A real rack: its machines are reached again through the
				// inventory of the topology the run was given.
				if entries[0].Topology == "" {
					return fmt.Errorf("ledger entry %s: no topology recorded for the ssh rack %s", entries[0].ID, entries[0].Rack)
				}
				r, err := loadRack(entries[0].Topology, cmd.ErrOrStderr())
				if err != nil {
					return fmt.Errorf("ledger entry %s: %w", entries[0].ID, err)
				}
				p, err := sshprovider.NewProvider(r, sshprovider.WithLogger(log))
				if err != nil {
					return fmt.Errorf("%s: %w", entries[0].Topology, err)
				}
				defer p.Close()
				lister, kube = p, fault.KubeFrom(p, r.APIServerURL())
			default:
				return fmt.Errorf("ledger entry %s: provider %q cannot recover yet", entries[0].ID, entries[0].Provider)
			}
			for _, e := range entries[1:] {
				if e.Rack != entries[0].Rack || e.Provider != entries[0].Provider {
					return fmt.Errorf("the ledger %s mixes racks (%s/%s and %s/%s): recover them one at a time", l.Dir(), entries[0].Provider, entries[0].Rack, e.Provider, e.Rack)
				}
			}
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
				return fmt.Errorf("some faults are still in place (kept in %s): %w", l.Dir(), err)
			}
			return residueAfterRecover(ctx, out, g.artifacts, lister, kube, residueTimeout)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "give up after this long")
	cmd.Flags().DurationVar(&residueTimeout, "residue-timeout", 5*time.Minute, "how long the rack may take to look as it did before the fault")
	return cmd
}

// residueAfterRecover compares the rack with the steady state the interrupted
// run kept before its fault, waiting for the rack to settle.
func residueAfterRecover(ctx context.Context, out io.Writer, artifacts string, nodes cluster.NodeLister, kube fault.KubeClient, limit time.Duration) error {
	path := rackstate.SteadyFile(artifacts)
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
