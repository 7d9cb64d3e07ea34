package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/topology"
	"rackdrill.dev/rackdrill/suites/framework"
)

// DefaultMatrix is the documented impact matrix shipped with rackdrill.
const DefaultMatrix = "scenarios/impact-matrix.yaml"

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
			m, err := matrix.Load(matrixPath)
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
			rows, err := framework.PlanRows(m, matrixPath, r, p, faults)
			if err != nil {
				return err
			}
			if only != "" && len(rows) == 0 {
				return fmt.Errorf("no fault %q in %s (known: %s)", only, matrixPath, strings.Join(fault.Names, ", "))
			}
			switch output {
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			case "text":
				printPlan(cmd.OutOrStdout(), r, p, rows)
				return nil
			default:
				return fmt.Errorf("--output %q: want text or json", output)
			}
		},
	}
	cmd.Flags().StringVar(&matrixPath, "matrix", DefaultMatrix, "impact matrix file")
	cmd.Flags().StringVar(&provider, "provider", "", "provider to plan for (default: the topology's spec.provider)")
	cmd.Flags().StringVar(&only, "fault", "", "plan only this fault")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

func printPlan(w io.Writer, r *topology.Rack, p topology.ProviderName, rows []framework.PlannedRow) {
	fmt.Fprintf(w, "Plan for rack %s (provider %s, %d nodes); nothing is touched.\n", r.Metadata.Name, p, len(r.Spec.Nodes))
	framework.PrintPlanRows(w, rows)
}
