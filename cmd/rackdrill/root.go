package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"rackdrill.dev/rackdrill/harness/topology"
)

// DefaultTopology is what every command loads when --topology is not given.
const DefaultTopology = "kind-configs/lab.yaml"

type globalOptions struct {
	topology  string
	artifacts string
	verbosity int
	labWaits  string
}

func newRootCommand() *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:   "rackdrill",
		Short: "Chaos and conformance drills for self-hosted HA Kubernetes racks",
		Long: `rackdrill checks that an HA Kubernetes rack (keepalived VIP + HAProxy, MetalLB,
ingress, reverse tunnel, NFS, UPS) survives what its architecture document promises.

It builds the rack as Docker containers (the default), in k3d, or adopts a real
rack over SSH, then injects each fault of the impact matrix while probes sample
every path, and reports which promises held.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&g.topology, "topology", "t", DefaultTopology, "rack topology file")
	pf.StringVar(&g.artifacts, "artifacts", defaultArtifacts(), "folder for reports, the fault ledger and dumps ($ARTIFACTS)")
	pf.IntVarP(&g.verbosity, "v", "v", 0, "log verbosity (0 for the user, 1+ for debugging)")
	pf.StringVar(&g.labWaits, "lab-waits", os.Getenv("RACKDRILL_LAB_WAITS"), "lengthen the lab build's waits on a slow machine: all=2x, or nodes-ready=6m,add-on=5m ($RACKDRILL_LAB_WAITS)")
	root.AddCommand(
		newValidateCommand(g),
		newPlanCommand(g),
		newRecoverCommand(g),
		newImagesCommand(g),
		newUpCommand(g),
		newDownCommand(g),
		newStatusCommand(g),
		newRunCommand(g),
		newPreflightCommand(g),
		newRehearseCommand(g),
		newProbesCommand(g),
		newReportCommand(g),
	)
	return root
}

func defaultArtifacts() string {
	if a := os.Getenv("ARTIFACTS"); a != "" {
		return a
	}
	return "_artifacts"
}

// loadRack loads a topology and prints its warnings; every command that takes a
// topology goes through it so that bad input is refused the same way everywhere.
func loadRack(path string, stderr io.Writer) (*topology.Rack, error) {
	r, warns, err := topology.Load(path)
	for _, w := range warns {
		fmt.Fprintf(stderr, "warning: %s: %s\n", path, w)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

func newValidateCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "validate [FILE...]",
		Short: "Check topology files: strict schema, defaults, and the rack's own consistency",
		Example: `  rackdrill validate kind-configs/*.yaml
  rackdrill validate my-rack.yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{g.topology}
			}
			var bad int
			for _, path := range args {
				r, err := loadRack(path, cmd.ErrOrStderr())
				if err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					bad++
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (rack %s: %d nodes, %d servers, provider %s)\n",
					path, r.Metadata.Name, len(r.Spec.Nodes), len(r.NodesWithRole(topology.RoleServer)), r.Spec.Provider)
			}
			if bad > 0 {
				return fmt.Errorf("%d of %d topology files are invalid", bad, len(args))
			}
			return nil
		},
	}
}
