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
			var rows []plannedRow
			for _, row := range m.Rows {
				if only != "" && row.Fault != only {
					continue
				}
				pl, err := fault.PlanFor(row.Fault, r, p)
				if err != nil {
					return fmt.Errorf("%s: rows[%s]: %w", matrixPath, row.Fault, err)
				}
				rows = append(rows, plannedRow{Row: row, Plan: pl})
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

type plannedRow struct {
	Row  matrix.Row `json:"row"`
	Plan fault.Plan `json:"plan"`
}

func printPlan(w io.Writer, r *topology.Rack, p topology.ProviderName, rows []plannedRow) {
	fmt.Fprintf(w, "Plan for rack %s (provider %s, %d nodes); nothing is touched.\n", r.Metadata.Name, p, len(r.Spec.Nodes))
	printPlanRows(w, rows)
}

// printPlanRows prints each row's targets, every step with where it runs, and
// what each cell expects.
func printPlanRows(w io.Writer, rows []plannedRow) {
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
			c := row.Cells[probe]
			switch c.During {
			case matrix.Up:
				fmt.Fprintf(w, " %s=up(blip<=%s)", probe, c.Within.Duration)
			case matrix.Down:
				fmt.Fprintf(w, " %s=down(<=%s)", probe, c.Within.Duration)
			default:
				fmt.Fprintf(w, " %s=any", probe)
			}
		}
		fmt.Fprintln(w)
	}
}
