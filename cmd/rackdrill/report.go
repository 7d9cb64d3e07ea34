package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"rackdrill.dev/rackdrill/harness/runrecord"
	"rackdrill.dev/rackdrill/reports"
)

func newReportCommand(g *globalOptions) *cobra.Command {
	var baseline, out string
	cmd := &cobra.Command{
		Use:   "report [RUN.json]",
		Short: "Render report.html and junit.xml again from a saved run.json",
		Long: `report renders the self-contained HTML report and the JUnit XML of a run from
its run.json (default <artifacts>/run.json), into --out (default the folder of
RUN.json). With --baseline, recovery times worse than the baseline run's are
marked in the grid and listed.`,
		Example: `  rackdrill report
  rackdrill report nightly/run.json --baseline last-week/run.json --out /tmp/report`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := filepath.Join(g.artifacts, "run.json")
			if len(args) == 1 {
				path = args[0]
			}
			run, err := runrecord.Load(path)
			if err != nil {
				return err
			}
			var base *runrecord.Run
			if baseline != "" {
				if base, err = runrecord.Load(baseline); err != nil {
					return fmt.Errorf("--baseline: %w", err)
				}
			}
			if out == "" {
				out = filepath.Dir(path)
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			w, err := reports.Render(run, out, base)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n%s\nverdict: %s\n", w.HTML, w.JUnit, run.Verdict())
			return nil
		},
	}
	cmd.Flags().StringVar(&baseline, "baseline", "", "an earlier run.json to compare recovery times with")
	cmd.Flags().StringVar(&out, "out", "", "folder for report.html and junit.xml (default: RUN.json's folder)")
	return cmd
}
