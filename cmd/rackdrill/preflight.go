package main

import (
	"fmt"
	"os"
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
		runbook bool
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

With --runbook it connects nowhere: it prints the upgrade of this rack to the
release --to names, machine by machine in the order to follow (kubeadm's upgrade
apply, then upgrade node; or K3s's binary replaced server by server, then on
each agent), each node drained, upgraded, uncordoned and seen Ready before the
next, and writes it to <artifacts>/preflight/runbook.txt. rackdrill never
upgrades a real rack itself.

Exit status: 0 safe to upgrade, 1 a check failed, 2 bad input or a broken
environment.`,
		Example: `  rackdrill preflight --to v1.34.x
  rackdrill preflight --to v1.34.2 --topology rack.yaml --artifacts /tmp/preflight
  rackdrill preflight --to v1.34.4+k3s1 --topology rack.yaml --runbook`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := preflight.ParseMinor(to); err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			r, err := loadRack(g.topology, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if runbook {
				rb, err := preflight.NewRunbook(r, to)
				if err != nil {
					return err
				}
				dir := filepath.Join(g.artifacts, "preflight")
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return err
				}
				text := rb.Text()
				if err := os.WriteFile(filepath.Join(dir, "runbook.txt"), []byte(text), 0o644); err != nil {
					return err
				}
				fmt.Fprint(cmd.OutOrStdout(), text)
				fmt.Fprintf(cmd.OutOrStdout(), "\nwritten to %s\n", filepath.Join(dir, "runbook.txt"))
				return nil
			}
			log := newLogger(cmd.ErrOrStderr(), g.verbosity)
			kc, kcFallback := g.kubeconfigFiles()
			opts := framework.Options{Topology: g.topology, WarningsShown: true, Artifacts: g.artifacts, UpgradeTo: to, AcceptNewHostKeys: accept,
				Kubeconfig: kc, KubeconfigFallback: kcFallback}
			if err := framework.Reachable(cmd.Context(), log, opts); err != nil {
				return err
			}
			prog := &progress{w: cmd.OutOrStdout()}
			env, ok, err := framework.RunInProcess(framework.RunConfig{
				Color:       colorful(os.Stdout),
				Options:     opts,
				Suites:      "conformance+preupgrade",
				LabelFilter: preflightLabels, Timeout: timeout, Verbose: verbose,
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
	cmd.Flags().BoolVar(&runbook, "runbook", false, "print this rack's upgrade to --to, step by step, and write it to the artifacts; connects nowhere")
	cmd.Flags().BoolVar(&yes, "yes", false, "ssh provider: install the probe workloads, if they are missing, without asking")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

// preflightLabels select the checks before an upgrade: the conformance suite
// and the pre-upgrade checks, not the rehearsal nor the checks after it.
const preflightLabels = "(conformance || preupgrade) && !rehearsal"
