package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/topology"
	"rackdrill.dev/rackdrill/suites/framework"
)

func newPlanCommand(g *globalOptions) *cobra.Command {
	var matrixPath, provider, only, output string
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Print what each scenario would inject, where, and what each cell expects; touches nothing",
		Example: `  rackdrill plan --topology kind-configs/lab.yaml
  rackdrill plan --topology my-rack.yaml --provider ssh --fault nfs-lost
  rackdrill plan -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := loadRack(g.topology, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			p := r.Spec.Provider
			if provider != "" {
				p = topology.ProviderName(provider)
			}
			var faults []string
			if only != "" {
				faults = []string{only}
			}
			pl, err := planRows(r, g.topology, p, matrixPath, faults)
			if err != nil {
				return err
			}
			if only != "" && len(pl.Rows) == 0 {
				return fmt.Errorf("no fault %q in %s (known: %s)", only, pl.MatrixFile, strings.Join(fault.Names, ", "))
			}
			switch output {
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(pl.Rows)
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
	cmd.Flags().StringVar(&only, "fault", "", "plan only this fault")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

func printPlan(w io.Writer, r *topology.Rack, p topology.ProviderName, pl *rackPlan) {
	fmt.Fprintf(w, "Plan for rack %s (provider %s, %d nodes); nothing is touched.\n", r.Metadata.Name, p, len(r.Spec.Nodes))
	framework.PrintDerivation(w, pl.MatrixFile, pl.Derivation)
	framework.PrintPlanRows(w, pl.Rows)
}
