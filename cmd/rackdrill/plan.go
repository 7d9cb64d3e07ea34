package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"rackdrill.dev/rackdrill/harness/cluster/providers"
	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/topology"
	"rackdrill.dev/rackdrill/suites/framework"
)

func newPlanCommand(g *globalOptions) *cobra.Command {
	var matrixPath, provider, only, output string
	var scenarios []string
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Print what each scenario would inject, where, and what each cell expects; touches nothing",
		Example: `  rackdrill plan --topology kind-configs/lab.yaml
  rackdrill plan --topology my-rack.yaml --provider ssh --scenario nfs-lost
  rackdrill plan -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := loadRack(g.topology, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			p := r.Spec.Provider
			if provider != "" {
				p = topology.ProviderName(provider)
				if !slices.Contains(providers.Names, p) {
					return fmt.Errorf("--provider %q: want one of %v", provider, providers.Names)
				}
			}
			if only != "" {
				scenarios = append(scenarios, only)
			}
			for _, s := range scenarios {
				if !slices.Contains(fault.Names, s) {
					return fmt.Errorf("--scenario %q: unknown scenario (known: %s)", s, strings.Join(fault.Names, ", "))
				}
			}
			pl, err := planRows(r, g.topology, p, matrixPath, scenarios)
			if err != nil {
				return err
			}
			if len(scenarios) > 0 && len(pl.Rows) == 0 {
				return fmt.Errorf("no row %s in %s", strings.Join(scenarios, ", "), pl.MatrixFile)
			}
			switch output {
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					Kind     string `json:"kind"`
					Rack     string `json:"rack"`
					Provider string `json:"provider"`
					Matrix   string `json:"matrix"`
					Rows     any    `json:"rows"`
				}{"Plan", r.Metadata.Name, string(p), pl.MatrixFile, pl.Rows})
			case "text":
				printPlan(cmd.OutOrStdout(), r, p, pl)
				return nil
			default:
				return fmt.Errorf("--output %q: want text or json", output)
			}
		},
	}
	cmd.Flags().StringVar(&matrixPath, "matrix", "", "impact matrix file (default: the topology's spec.matrix, else the documented one built in)")
	cmd.Flags().StringVar(&provider, "provider", "", "provider to plan for (default: the topology's spec.provider)")
	cmd.Flags().StringArrayVar(&scenarios, "scenario", nil, "plan only this matrix row (repeatable), as run --scenario")
	cmd.Flags().StringVar(&only, "fault", "", "plan only this row")
	_ = cmd.Flags().MarkDeprecated("fault", "use --scenario, as run does")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

func printPlan(w io.Writer, r *topology.Rack, p topology.ProviderName, pl *rackPlan) {
	fmt.Fprintf(w, "Plan for rack %s (provider %s, %d nodes); nothing is touched.\n", r.Metadata.Name, p, len(r.Spec.Nodes))
	framework.PrintDerivation(w, pl.MatrixFile, pl.Derivation)
	framework.PrintPlanRows(w, pl.Rows)
}
