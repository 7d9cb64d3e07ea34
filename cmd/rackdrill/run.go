package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/cluster/providers"
	"rackdrill.dev/rackdrill/harness/conform"
	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/runrecord"
	"rackdrill.dev/rackdrill/harness/topology"
	"rackdrill.dev/rackdrill/reports"
	"rackdrill.dev/rackdrill/suites/framework"

	// The suites' specs, declared by importing them.
	_ "rackdrill.dev/rackdrill/suites/chaos"
	_ "rackdrill.dev/rackdrill/suites/conformance"
	_ "rackdrill.dev/rackdrill/suites/preupgrade"
	_ "rackdrill.dev/rackdrill/suites/rehearsal"
)

func newRunCommand(g *globalOptions) *cobra.Command {
	var (
		labels    string
		scenarios []string
		keep      bool
		timeout   time.Duration
		verbose   bool
		acceptNew bool
		provider  string
		matrixF   string
		devF      string
		safe      framework.Safety
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the conformance and chaos suites against the rack (the lab is built if it is not up)",
		Long: `run checks the rack against its architecture (the conformance suite), then drills
every fault of the impact matrix (the chaos suite), one at a time, each reverted
whatever happens. With the containers provider it builds the lab's images and
brings the lab up first when it is not up, and removes it at the end unless
--keep (a lab that was already up is left up).

It writes, into the artifacts folder: junit.xml, run.json (every drill with its
probes' timelines and each cell's verdict) and report.html. While it runs it
prints each drill's phase and every change of the probes' states.

On a real rack (--provider ssh) the rows to drill are named with --scenario and
run after the conformance suite. rackdrill first prints the plan, every command on
every machine, and asks for confirmation (--yes answers it; --dry-run stops after
the plan without connecting anywhere). Each machine a fault touches gets a dead-man
timer that reverts the fault by itself if rackdrill disappears. server-kill-2 on
three servers needs --allow-quorum-loss; the power drill needs --allow-power.

Exit status: 0 every promise held (or is a declared deviation), 1 a promise was
broken, 2 bad input or a broken environment.`,
		Example: `  rackdrill run
  rackdrill run --scenario server-kill-1 --scenario tunnel-client-cut --keep
  rackdrill run --label-filter 'conformance || (chaos && !power)'
  rackdrill run --provider ssh --topology my-rack.yaml --scenario nfs-lost --dry-run
  rackdrill run --provider ssh --topology my-rack.yaml --scenario lb-master-lost --yes`,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			var focus []string
			for _, s := range scenarios {
				if !slices.Contains(fault.Names, s) {
					return fmt.Errorf("--scenario %q: unknown scenario (known: %s)", s, strings.Join(fault.Names, ", "))
				}
				focus = append(focus, regexp.QuoteMeta(s)+": ")
			}
			if len(scenarios) > 0 && labels == "" {
				labels = "chaos"
			}
			r, err := loadRack(g.topology, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if provider != "" {
				if !slices.Contains(providers.Names, topology.ProviderName(provider)) {
					return fmt.Errorf("--provider %q: want one of %v", provider, providers.Names)
				}
				r.Spec.Provider = topology.ProviderName(provider)
			}
			if r.Spec.Provider == topology.ProviderSSH {
				// A real rack: the rows to drill are named, the conformance
				// suite runs first, and the rows ginkgo will actually run
				// (whatever selected them) are planned, gated and confirmed
				// by the framework before anything connects.
				if len(scenarios) > 0 && !cmd.Flags().Changed("label-filter") {
					labels = "conformance || chaos"
					// Ginkgo matches the suite's description, then the
					// spec's containers: every conformance spec.
					focus = append(focus, `^rackdrill \S+ conformance `)
				}
				if labels == "" {
					labels = "conformance"
				}
				safe.NamedOnly, safe.Named, safe.TopologyFile, safe.Out = true, scenarios, g.topology, out
			} else if safe.DryRun {
				pl, err := planRows(r, g.topology, r.Spec.Provider, matrixF, scenarios)
				if err != nil {
					return err
				}
				printPlan(out, r, r.Spec.Provider, pl)
				fmt.Fprintln(out, "\ndry run: nothing was built or run")
				return nil
			}
			if labels == "" {
				// The pre-upgrade checks need a target release: rackdrill preflight.
				labels = "!preupgrade && !rehearsal"
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			var p cluster.Provider
			builtHere := false
			if providers.Builds(r.Spec.Provider) {
				if p, err = providerFor(cmd, g, r, providers.WithProgress(out)); err != nil {
					return err
				}
				if builtHere, err = providers.Ensure(ctx, p, r, out); err != nil {
					if r.Spec.Provider == topology.ProviderK3d {
						err = fmt.Errorf("%w (what was created is removed by `rackdrill down --topology %s`)", err, g.topology)
					}
					return err
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			log := newLogger(cmd.ErrOrStderr(), g.verbosity)
			kc, kcFallback := g.kubeconfigFiles()
			opts := framework.Options{Topology: g.topology, WarningsShown: true, Provider: string(r.Spec.Provider), Artifacts: g.artifacts, AcceptNewHostKeys: acceptNew,
				Kubeconfig: kc, KubeconfigFallback: kcFallback,
				Matrix: matrixF, Deviations: devF}
			// On a real rack, the framework connects after the gate and
			// before any spec (an unreachable machine, a wrong host key, a
			// missing sudo: each host named, exit 2) and installs the
			// probe workloads when they are missing.
			// From here on the specs handle Ctrl-C themselves: each fault is
			// reverted by its guard, so the signal context is released.
			stop()
			prog := &progress{w: out}
			env, ok, err := framework.RunInProcess(framework.RunConfig{
				Color:       colorful(os.Stdout),
				Options:     opts,
				Suites:      "conformance+chaos",
				LabelFilter: labels, Focus: focus, Timeout: timeout, Verbose: verbose,
				Progress: prog.phase, Live: prog.live, Checked: prog.checked,
				Safety: &safe,
			}, log)
			if errors.Is(err, framework.ErrDryRun) {
				return nil
			}
			if err != nil {
				return err
			}
			writeReports(cmd, env.Artifacts, "run.json")
			if builtHere && !keep {
				fmt.Fprintf(out, "removing the lab %s (it was built by this run; --keep keeps it)\n", r.Metadata.Name)
				dctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				if err := p.Down(dctx); err != nil {
					return err
				}
			}
			if !ok {
				return &failedError{msg: "some promises were broken: see " + filepath.Join(env.Artifacts, "report.html")}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&labels, "label-filter", "", "run the specs these labels select (conformance, chaos, disruptive, quorum, power)")
	cmd.Flags().StringArrayVar(&scenarios, "scenario", nil, "drill only this matrix row (repeatable; implies --label-filter chaos unless given)")
	cmd.Flags().BoolVar(&keep, "keep", os.Getenv("KEEP") == "1", "keep a lab this run built (default from KEEP=1)")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Hour, "give up after this long (every fault is still reverted)")
	cmd.Flags().BoolVar(&verbose, "verbose", false, "print every spec's steps and output, as ginkgo -v")
	cmd.Flags().StringVar(&matrixF, "matrix", "", "impact matrix file (default: the topology's spec.matrix, else the documented one built in)")
	cmd.Flags().StringVar(&devF, "deviations", "", "known-deviations overlay (default: scenarios/deviations-<provider>.yaml, or deviations-<provider>-k3s.yaml for K3s, built in, when it exists)")
	cmd.Flags().StringVar(&provider, "provider", "", "containers, k3d or ssh (default: the topology's spec.provider)")
	cmd.Flags().BoolVar(&safe.Yes, "yes", false, "ssh provider: inject the planned faults without asking")
	cmd.Flags().BoolVar(&safe.DryRun, "dry-run", false, "print the plan (every command, every machine) and stop: nothing is run anywhere")
	cmd.Flags().BoolVar(&safe.AllowQuorumLoss, "allow-quorum-loss", false, "ssh provider: allow faults that take etcd below quorum (server-kill-2 on 3 servers)")
	cmd.Flags().BoolVar(&safe.AllowPower, "allow-power", false, "ssh provider: allow the power drill (every machine needs spec.nodes[].power)")
	cmd.Flags().BoolVar(&acceptNew, "accept-new-host-keys", false, "ssh provider: record the host key of a machine known_hosts does not list yet (a changed key is always refused)")
	return cmd
}

// progress prints each drill's phase and the changes of its probes' states,
// one line each, so that it reads the same in a terminal and in a CI log.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
	fault string
	cur   string
}

func (p *progress) stamp() string {
	return time.Since(p.start).Round(time.Second).String()
}

func (p *progress) phase(f, phase string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fault != f {
		p.fault, p.start = f, time.Now()
		fmt.Fprintf(p.w, "\n== %s\n", f)
	}
	p.cur = phase
	fmt.Fprintf(p.w, "[%s %6s] %s\n", f, p.stamp(), phase)
}

func (p *progress) live(f string, states map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	names := make([]string, 0, len(states))
	for n := range states {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		mark := "up"
		if !states[n] {
			mark = "DOWN"
		}
		parts = append(parts, n+" "+mark)
	}
	fmt.Fprintf(p.w, "[%s %6s]   %-15s %s\n", f, p.stamp(), p.cur, strings.Join(parts, " · "))
}

// checked prints a conformance or pre-upgrade check's result in a line (the
// failure's message under it).
func (p *progress) checked(r conform.Result) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case r.Skipped != "":
		fmt.Fprintf(p.w, "[%s] skip  %s: %s\n", r.Family, r.Check, r.Skipped)
	case r.Passed:
		fmt.Fprintf(p.w, "[%s] ok    %s: %s\n", r.Family, r.Check, r.Observed)
	default:
		fmt.Fprintf(p.w, "[%s] FAIL  %s\n        %s\n", r.Family, r.Check, strings.ReplaceAll(r.Error, "\n", "\n        "))
	}
}

// writeReports renders report.html and junit.xml from the run's run.json and
// says where the reports are; a report that cannot be rendered is said, not
// fatal (run.json is written).
func writeReports(cmd *cobra.Command, artifacts string, also ...string) {
	run, err := runrecord.Load(filepath.Join(artifacts, "run.json"))
	if err == nil {
		var w reports.Written
		if w, err = reports.Render(run, artifacts, nil); err == nil {
			paths := []string{w.JUnit, w.HTML}
			for _, a := range also {
				paths = append(paths, filepath.Join(artifacts, a))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "reports: %s\n", strings.Join(paths, ", "))
			return
		}
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "report: %v\n", err)
}
