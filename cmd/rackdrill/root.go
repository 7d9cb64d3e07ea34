package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"rackdrill.dev/rackdrill/harness/cluster/providers"
	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/topology"
)

// DefaultTopology is what every command loads when neither --topology nor
// $RACKDRILL_TOPOLOGY is given, and only where it exists: in a clone of
// rackdrill's repository, the lab.
const DefaultTopology = "kind-configs/lab.yaml"

// TopologyEnv names the topology when --topology is not given.
const TopologyEnv = "RACKDRILL_TOPOLOGY"

type globalOptions struct {
	topology string
	// topologyGiven: by --topology or $RACKDRILL_TOPOLOGY, not the clone's lab.
	topologyGiven bool
	artifacts     string
	verbosity     int
	labWaits      string
	kubeconfig    string
}

// kubeconfigFiles is the rule for a real rack's kubeconfig: --kubeconfig
// replaces the admin kubeconfig read from a server; $KUBECONFIG is read only
// when no server gives one (a rack whose admin kubeconfig lives elsewhere),
// so that a KUBECONFIG exported for another cluster changes nothing. The lab
// and k3d hold their own.
func (g *globalOptions) kubeconfigFiles() (paths string, fallback bool) {
	if g.kubeconfig != "" {
		return g.kubeconfig, false
	}
	return os.Getenv("KUBECONFIG"), true
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
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			g.resolveTopology(cmd.Flags().Changed("topology"))
			return nil
		},
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&g.topology, "topology", "t", "", "rack topology file ($"+TopologyEnv+"; in a clone of rackdrill, "+DefaultTopology+")")
	pf.StringVar(&g.artifacts, "artifacts", defaultArtifacts(), "folder for reports and dumps ($ARTIFACTS)")
	pf.StringVar(&g.kubeconfig, "kubeconfig", "", "real rack: read this kubeconfig instead of the servers' admin kubeconfig ($KUBECONFIG is read only when no server gives one)")
	pf.IntVarP(&g.verbosity, "v", "v", 0, "log verbosity (0 for the user, 1+ for debugging)")
	pf.StringVar(&g.labWaits, "lab-waits", os.Getenv("RACKDRILL_LAB_WAITS"), "lengthen the lab build's waits on a slow machine: all=2x, or nodes-ready=6m,add-on=5m ($RACKDRILL_LAB_WAITS)")
	_ = root.RegisterFlagCompletionFunc("topology", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
	})
	_ = root.RegisterFlagCompletionFunc("kubeconfig", cobra.FixedCompletions(nil, cobra.ShellCompDirectiveDefault))
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
		newVersionCommand(),
	)
	completeFlags(root)
	return root
}

// resolveTopology applies the rule for a topology not given by flag:
// $RACKDRILL_TOPOLOGY, else the lab's file when it is there (a clone), else
// none, which loadRack refuses naming both ways to give one.
func (g *globalOptions) resolveTopology(flagGiven bool) {
	if flagGiven && g.topology != "" {
		g.topologyGiven = true
		return
	}
	if env := os.Getenv(TopologyEnv); env != "" {
		g.topology, g.topologyGiven = env, true
		return
	}
	if _, err := os.Stat(DefaultTopology); err == nil {
		g.topology = DefaultTopology
	}
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
	if path == "" {
		return nil, fmt.Errorf("no topology: give the rack's file with --topology FILE or $%s (%s is the default only in a clone of rackdrill, for the lab)", TopologyEnv, DefaultTopology)
	}
	r, warns, err := topology.Load(path)
	for _, w := range warns {
		fmt.Fprintf(stderr, "warning: %s: %s\n", path, w)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// validation is what `validate -o json` prints: one entry per file.
type validation struct {
	Kind  string          `json:"kind"`
	Files []validatedFile `json:"files"`
}

type validatedFile struct {
	File     string `json:"file"`
	OK       bool   `json:"ok"`
	Rack     string `json:"rack,omitempty"`
	Provider string `json:"provider,omitempty"`
	Nodes    int    `json:"nodes,omitempty"`
	Error    string `json:"error,omitempty"`
}

func newValidateCommand(g *globalOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "validate [FILE...]",
		Short: "Check topology files: strict schema, defaults, and the rack's own consistency",
		Example: `  rackdrill validate kind-configs/*.yaml
  rackdrill validate my-rack.yaml -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output %q: want text or json", output)
			}
			if len(args) == 0 {
				args = []string{g.topology}
			}
			res := validation{Kind: "Validation"}
			var bad int
			for _, path := range args {
				warnTo := cmd.ErrOrStderr()
				if output == "json" {
					warnTo = io.Discard
				}
				r, err := loadRack(path, warnTo)
				if err != nil {
					if output == "text" {
						fmt.Fprintln(cmd.ErrOrStderr(), err)
					}
					res.Files = append(res.Files, validatedFile{File: path, Error: err.Error()})
					bad++
					continue
				}
				res.Files = append(res.Files, validatedFile{File: path, OK: true, Rack: r.Metadata.Name, Provider: string(r.Spec.Provider), Nodes: len(r.Spec.Nodes)})
				if output == "text" {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (rack %s: %d nodes, %d servers, provider %s)\n",
						path, r.Metadata.Name, len(r.Spec.Nodes), len(r.NodesWithRole(topology.RoleServer)), r.Spec.Provider)
				}
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return err
				}
			}
			if bad > 0 {
				return fmt.Errorf("%d of %d topology files are invalid", bad, len(args))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

// completeFlags lets the shell complete the values of --scenario (the
// matrix's rows) and --provider on every command that takes them (`rackdrill
// completion bash|zsh|fish|powershell` writes the script).
func completeFlags(root *cobra.Command) {
	var names []string
	for _, p := range providers.Names {
		names = append(names, string(p))
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Flags().Lookup("scenario") != nil {
			_ = c.RegisterFlagCompletionFunc("scenario", cobra.FixedCompletions(fault.Names, cobra.ShellCompDirectiveNoFileComp))
		}
		if c.Flags().Lookup("provider") != nil {
			_ = c.RegisterFlagCompletionFunc("provider", cobra.FixedCompletions(names, cobra.ShellCompDirectiveNoFileComp))
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
