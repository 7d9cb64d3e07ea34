package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"rackdrill.dev/rackdrill/harness/preflight"
	"rackdrill.dev/rackdrill/suites/framework"
)

func newPreflightCommand(g *globalOptions) *cobra.Command {
	var (
		to      string
		timeout time.Duration
		verbose bool
		accept  bool
		yes     bool
	)
	cmd := &cobra.Command{
		Use:   "preflight --to vMAJOR.MINOR[.PATCH]",
		Short: "Check that the rack is safe to upgrade: conformance, version skew, etcd snapshot, drains, removed APIs",
		Long: `preflight runs the conformance suite and then the pre-upgrade checks against the
running rack, read-only: the version skew policy between every component and the
target release, an etcd snapshot copied into <artifacts>/preflight/ and verified
with etcdutl, a drain report per node (every eviction asked with dryRun, so
PodDisruptionBudgets answer as in a real drain), and the objects that use APIs
the target release removes.

It needs the rack up (rackdrill up); it never builds or changes it, but for one
thing on a real rack (--provider ssh): the probe workloads, which the conformance
checks need, are installed first when they are missing, after a question on the
terminal or with --yes (rackdrill probes install does it alone).

Exit status: 0 safe to upgrade, 1 a check failed, 2 bad input or a broken
environment.`,
		Example: `  rackdrill preflight --to v1.34.x
  rackdrill preflight --to v1.34.2 --topology rack.yaml --artifacts /tmp/preflight`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := preflight.ParseMinor(to); err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			if _, err := loadRack(g.topology, cmd.ErrOrStderr()); err != nil {
				return err
			}
			log := newLogger(cmd.ErrOrStderr(), g.verbosity)
			opts := framework.Options{Topology: g.topology, Artifacts: g.artifacts, UpgradeTo: to, AcceptNewHostKeys: accept}
			if err := framework.Reachable(cmd.Context(), log, opts); err != nil {
				return err
			}
			prog := &progress{w: cmd.OutOrStdout()}
			env, ok, err := framework.RunInProcess(framework.RunConfig{
				Options:     opts,
				Suites:      "conformance+preupgrade",
				LabelFilter: "conformance || preupgrade", Timeout: timeout, Verbose: verbose,
				Checked: prog.checked,
				Safety:  &framework.Safety{Yes: yes, TopologyFile: g.topology, Out: cmd.OutOrStdout()},
			}, log)
			if err != nil {
				return err
			}
			writeReports(cmd, env.Artifacts, "run.json", "preflight")
			if !ok {
				return &failedError{msg: "the rack is not ready for the upgrade to " + to + ": see " + filepath.Join(env.Artifacts, "report.html")}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the release the upgrade goes to (v1.34.x)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "give up after this long")
	cmd.Flags().BoolVar(&verbose, "verbose", false, "print every spec's steps and output, as ginkgo -v")
	cmd.Flags().BoolVar(&accept, "accept-new-host-keys", false, "ssh provider: record the host key of a machine known_hosts does not list yet")
	cmd.Flags().BoolVar(&yes, "yes", false, "ssh provider: install the probe workloads, if they are missing, without asking")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}
