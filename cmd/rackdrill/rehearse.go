package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/cluster/providers"
	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/preflight"
	"rackdrill.dev/rackdrill/harness/rackclient"
	"rackdrill.dev/rackdrill/harness/runrecord"
	"rackdrill.dev/rackdrill/harness/topology"
	"rackdrill.dev/rackdrill/harness/upgrade"
	"rackdrill.dev/rackdrill/suites/framework"
	"rackdrill.dev/rackdrill/suites/rehearsal"
)

// rehearsalSummary is what `rackdrill rehearse` writes to <artifacts>/rehearsal/summary.json.
type rehearsalSummary struct {
	Rack     string           `json:"rack"`
	From     string           `json:"from"`
	To       string           `json:"to"`
	KitBuild time.Duration    `json:"kitBuild"`
	Took     time.Duration    `json:"took"`
	Verdict  string           `json:"verdict,omitempty"`
	Steps    []runrecord.Step `json:"steps"`
	// APIOutages are the API's longest outage while each machine was
	// upgraded, from the api probe's timeline.
	APIOutages []upgrade.Outage `json:"apiOutages,omitempty"`
	// Kubelets are the nodes' kubelet versions once it ended.
	Kubelets map[string]string `json:"kubelets,omitempty"`
	// Components are the images kube-system's components run once it
	// ended, each with its count: "registry.k8s.io/etcd:3.6.5-0 ×3".
	Components map[string][]string `json:"components,omitempty"`
	Error      string              `json:"error,omitempty"`
}

func newRehearseCommand(g *globalOptions) *cobra.Command {
	var (
		to, from     string
		drainTimeout time.Duration
		timeout      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "rehearse --to vX.Y.Z [--from vX.Y.Z]",
		Short: "Upgrade the lab to a release the way the rack's operator would, step by step (the rehearsal of the rack's upgrade)",
		Long: `rehearse performs the rack's upgrade runbook (rackdrill preflight --to X --runbook) on
the lab: it builds the target release's images and upgrade kit (kubeadm, kubelet,
kubectl, etcd, CoreDNS, from the Go module proxy, cached by content), brings the lab
up at the rack's release if it is not up, then upgrades it machine by machine with the
real tools: kubeadm upgrade plan and apply on the first server, kubeadm upgrade node
on every other machine, each node drained (PodDisruptionBudgets honoured), its
kubelet and kubectl replaced and restarted, uncordoned and seen Ready at the new
version before the next.

Before the upgrade it runs the conformance suite and the pre-upgrade checks (as
rackdrill preflight). Every probe samples the rack throughout the upgrade, and the
rolling-upgrade row (scenarios/rehearsal-matrix.yaml) judges what they saw, then
the residue check compares the rack with what it was (machines, VIP holder, etcd
members, workloads). Each step's start and end are marked on the report's timeline
and kept in run.json; each step's output is in <artifacts>/rehearsal/, with the
runbook and summary.json.

An upgrade has no revert: on a failure the lab is left as it is for inspection,
and rackdrill down then rackdrill up restore it.

The lab starts at the topology's spec.kubernetes.version (the lab's default,
` + lab.KubernetesVersion + `), or at --from: the release the real rack runs. A release
the lab does not ship recipes for (` + strings.Join(lab.ReleaseVersions(), ", ") + `) is derived from
what kubeadm of that version deploys (etcd, CoreDNS, pause: its constants.go, read
through the Go module proxy), for --from and --to alike; its node image is built
then (cold: the Kubernetes build, about 10 minutes here). A running lab at another
release is refused: rackdrill down first.

It refuses a real rack: rackdrill never upgrades one.`,
		Example: `  rackdrill rehearse --to v1.34.4
  rackdrill rehearse --from v1.33.6 --to v1.34.4     # the rack runs v1.33.6
  make rehearse TO=v1.34.4
  make rehearse FROM=v1.33.6 TO=v1.34.4`,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			r, err := loadRack(g.topology, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if r.Spec.Provider != topology.ProviderContainers {
				return fmt.Errorf("%s: rack %s (provider %s): an upgrade is rehearsed on the lab only (provider containers), never on a real rack; its runbook: rackdrill preflight --to %s --runbook --topology %s",
					g.topology, r.Metadata.Name, r.Spec.Provider, to, g.topology)
			}
			if from != "" {
				if !lab.IsKubernetesRelease(from) {
					return fmt.Errorf("--from %q: want the rack's Kubernetes release, such as %s", from, lab.KubernetesVersion)
				}
				r.Spec.Kubernetes.Version = from
			}
			// The skew policy first, with the preflight's own message: a
			// target it refuses is refused for that, whatever the lab builds.
			rb, err := preflight.NewRunbook(r, to)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			// Both releases as the lab builds them: shipped, or derived
			// from the module proxy (seconds once its modules are cached).
			if _, err := lab.ReleaseOf(ctx, r.Spec.Kubernetes.Version); err != nil {
				if from == "" {
					return fmt.Errorf("%s: spec.kubernetes.version: %w", g.topology, err)
				}
				return fmt.Errorf("--from %s: %w", from, err)
			}
			if _, err := lab.ReleaseOf(ctx, to); err != nil {
				return fmt.Errorf("--to %s: %w", to, err)
			}
			b, err := lab.NewRepoBuilder(out)
			if err != nil {
				return err
			}
			t0 := time.Now()
			fmt.Fprintf(out, "rehearse: the %s kit (the release's images and binaries)\n", to)
			results, err := b.Build(ctx, to+"/kit")
			if err != nil {
				return err
			}
			rec := rehearsalSummary{Rack: r.Metadata.Name, From: r.Spec.Kubernetes.Version, To: to, KitBuild: time.Since(t0)}
			fmt.Fprintf(out, "rehearse: the kit %s (%s)\n", results[len(results)-1].Tag, rec.KitBuild.Round(time.Second))
			p, err := providerFor(cmd, g, r, providers.WithProgress(out))
			if err != nil {
				return err
			}
			if _, err := providers.Ensure(ctx, p, r, out); err != nil {
				return err
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// A lab left up at another release (an earlier rehearsal's
			// target, or the default when --from names another) is not
			// the rack to rehearse.
			if err := labRunsRelease(ctx, p, r, g.topology); err != nil {
				return err
			}
			stop()
			rehearsal.DrainTimeout = drainTimeout
			dir := filepath.Join(g.artifacts, "rehearsal")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, "runbook.txt"), []byte(rb.Text()), 0o644); err != nil {
				return err
			}
			log := newLogger(cmd.ErrOrStderr(), g.verbosity)
			prog := &progress{w: out}
			start := time.Now()
			env, ok, err := framework.RunInProcess(framework.RunConfig{
				Color: colorful(os.Stdout),
				Options: framework.Options{Topology: g.topology, WarningsShown: true, Provider: string(r.Spec.Provider), Artifacts: g.artifacts, UpgradeTo: to,
					KubernetesVersion: r.Spec.Kubernetes.Version},
				Suites: "conformance+preupgrade+rehearsal",
				// Before the upgrade: the rack conforms and may be upgraded
				// (as rackdrill preflight); then the upgrade, judged.
				LabelFilter: "conformance || preupgrade || rehearsal", Timeout: timeout,
				Progress: prog.phase, Live: prog.live, Checked: prog.checked,
			}, log)
			if err != nil {
				return err
			}
			writeReports(cmd, env.Artifacts, "run.json", "preflight", "rehearsal")
			rec.Took = time.Since(start)
			if run, err := runrecord.Load(filepath.Join(env.Artifacts, "run.json")); err == nil {
				for _, d := range run.Drills {
					if d.Result.Fault == upgrade.Kind {
						rec.Steps = d.Steps
						rec.APIOutages = upgrade.Outages(d.Steps, d.Timelines["api"])
						rec.Verdict = string(d.Result.Verdict)
						rec.Error = d.Error
						for _, c := range d.Checks {
							if !c.OK && rec.Error == "" {
								rec.Error = c.Name + ": " + c.Detail
							}
						}
					}
				}
			}
			if rec.Verdict == "" && rec.Error == "" {
				if failed := env.FailedSpecs(); len(failed) > 0 {
					rec.Error = rehearsal.NotRehearsed(failed)
				}
			}
			if cs, err := rackclient.New(p, r.APIServerURL(), rackclient.OperationsTimeout).Clientset(context.Background()); err == nil {
				if list, err := cs.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{}); err == nil {
					rec.Kubelets = map[string]string{}
					for _, n := range list.Items {
						rec.Kubelets[n.Name] = n.Status.NodeInfo.KubeletVersion
					}
				}
				if pods, err := cs.CoreV1().Pods("kube-system").List(context.Background(), metav1.ListOptions{}); err == nil {
					rec.Components = componentImages(pods.Items)
				}
			}
			data, _ := json.MarshalIndent(rec, "", "  ")
			if err := os.WriteFile(filepath.Join(dir, "summary.json"), data, 0o644); err != nil {
				return err
			}
			printRehearsal(cmd, rec)
			if !ok {
				return &failedError{msg: fmt.Sprintf("the rehearsal of the upgrade to %s failed: see %s\n"+
					"the lab is left as it is for inspection; `rackdrill down` then `rackdrill up` restore it", to, filepath.Join(env.Artifacts, "report.html"))}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the release to upgrade the lab to (shipped: "+strings.Join(lab.ReleaseVersions(), ", ")+"; any other is derived)")
	cmd.Flags().StringVar(&from, "from", "", "the release the lab starts at, the real rack's (default: the topology's spec.kubernetes.version)")
	cmd.Flags().DurationVar(&drainTimeout, "drain-timeout", 10*time.Minute, "give up on a drain after this long (the runbook's kubectl drain --timeout)")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Hour, "give up after this long")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

// labRunsRelease checks that every node of the running lab runs release
// r.Spec.Kubernetes.Version.
func labRunsRelease(ctx context.Context, p cluster.Provider, r *topology.Rack, file string) error {
	cs, err := rackclient.New(p, r.APIServerURL(), rackclient.OperationsTimeout).Clientset(ctx)
	if err != nil {
		return err
	}
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("rack %s: listing its nodes: %w", r.Metadata.Name, err)
	}
	want := r.Spec.Kubernetes.Version
	for _, n := range list.Items {
		if got := n.Status.NodeInfo.KubeletVersion; got != want {
			return fmt.Errorf("rack %s is up at another release: %s's kubelet is %s, not %s: `rackdrill down --topology %s` first, then rehearse again",
				r.Metadata.Name, n.Name, got, want, file)
		}
	}
	return nil
}

func printRehearsal(cmd *cobra.Command, rec rehearsalSummary) {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "\nrehearsal of %s's upgrade %s -> %s: %s, %d steps, %s in all (the kit: %s)\n", rec.Rack, rec.From, rec.To,
		orNone(rec.Verdict), len(rec.Steps), rec.Took.Round(time.Second), rec.KitBuild.Round(time.Second))
	for i, m := range rec.Steps {
		status := "ok"
		if m.Error != "" {
			status = "FAILED"
		}
		fmt.Fprintf(out, "  %2d. %-6s %8s  %s\n", i+1, status, m.End.Sub(m.Start).Round(100*time.Millisecond), m.Name)
	}
	if rec.Error != "" {
		fmt.Fprintf(out, "error: %s\n", rec.Error)
	}
	for _, o := range rec.APIOutages {
		fmt.Fprintf(out, "  API's longest outage while %s was upgraded: %s\n", o.Machine, o.Longest.Round(100*time.Millisecond))
	}
	names := make([]string, 0, len(rec.Kubelets))
	for n := range rec.Kubelets {
		names = append(names, n)
	}
	sort.Strings(names)
	var at []string
	for _, n := range names {
		at = append(at, n+" "+rec.Kubelets[n])
	}
	if len(at) > 0 {
		fmt.Fprintf(out, "kubelets: %s\n", strings.Join(at, ", "))
	}
	comps := make([]string, 0, len(rec.Components))
	for c := range rec.Components {
		comps = append(comps, c)
	}
	sort.Strings(comps)
	for _, c := range comps {
		fmt.Fprintf(out, "%s: %s\n", c, strings.Join(rec.Components[c], ", "))
	}
}

// componentImages are, per component of kube-system (its pods' component or
// k8s-app label), the images its pods run, each with its count.
func componentImages(pods []corev1.Pod) map[string][]string {
	counts := map[string]map[string]int{}
	for _, p := range pods {
		c := p.Labels["component"]
		if c == "" {
			c = p.Labels["k8s-app"]
		}
		if c == "" {
			continue
		}
		for _, ct := range p.Spec.Containers {
			if counts[c] == nil {
				counts[c] = map[string]int{}
			}
			counts[c][ct.Image]++
		}
	}
	out := map[string][]string{}
	for c, imgs := range counts {
		for img, n := range imgs {
			out[c] = append(out[c], fmt.Sprintf("%s ×%d", img, n))
		}
		sort.Strings(out[c])
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "not judged"
	}
	return s
}
