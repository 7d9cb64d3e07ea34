package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"rackdrill.dev/rackdrill/harness/cluster/providers"
	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/preflight"
	"rackdrill.dev/rackdrill/harness/rackclient"
	"rackdrill.dev/rackdrill/harness/topology"
	"rackdrill.dev/rackdrill/harness/upgrade"
)

// rehearsal is what `rackdrill rehearse` writes to <artifacts>/rehearsal/steps.json.
type rehearsal struct {
	Rack     string            `json:"rack"`
	From     string            `json:"from"`
	To       string            `json:"to"`
	KitBuild time.Duration     `json:"kitBuild"`
	Steps    []upgrade.Mark    `json:"steps"`
	Kubelets map[string]string `json:"kubelets,omitempty"`
	Error    string            `json:"error,omitempty"`
}

func newRehearseCommand(g *globalOptions) *cobra.Command {
	var (
		to           string
		drainTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "rehearse --to vX.Y.Z",
		Short: "Upgrade the lab to a release the way the rack's operator would, step by step (the rehearsal of the rack's upgrade)",
		Long: `rehearse performs the rack's upgrade runbook (rackdrill preflight --to X --runbook) on
the lab: it builds the target release's images and upgrade kit (kubeadm, kubelet,
kubectl, etcd, CoreDNS, from the Go module proxy, cached by content), brings the lab
up at its own release if it is not up, then upgrades it machine by machine with the
real tools: kubeadm upgrade plan and apply on the first server, kubeadm upgrade node
on every other machine, each node drained (PodDisruptionBudgets honoured), its
kubelet and kubectl replaced and restarted, uncordoned and seen Ready at the new
version before the next.

Each step's start, end and output are written to <artifacts>/rehearsal/ (steps.json
and one log per step). An upgrade has no revert: on a failure the lab is left as it
is for inspection, and rackdrill down then rackdrill up restore it.

Not yet: the probes sampled during the upgrade, the rolling-upgrade row judged, and
the conformance suite before and after (issue 18).

It refuses a real rack: rackdrill never upgrades one.`,
		Example: `  rackdrill rehearse --to v1.34.4
  make rehearse TO=v1.34.4`,
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
			if _, ok := lab.Releases[to]; !ok {
				return fmt.Errorf("--to %q: the lab builds %s", to, strings.Join(lab.ReleaseVersions(), " and "))
			}
			rb, err := preflight.NewRunbook(r, to)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
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
			rec := rehearsal{Rack: r.Metadata.Name, From: r.Spec.Kubernetes.Version, To: to, KitBuild: time.Since(t0)}
			kit := results[len(results)-1].Tag
			p, err := providerFor(cmd, g, r, providers.WithProgress(out))
			if err != nil {
				return err
			}
			if _, err := providers.Ensure(ctx, p, r, out); err != nil {
				return err
			}
			nodes, err := p.Nodes(ctx)
			if err != nil {
				return err
			}
			cs, err := rackclient.New(p, r.APIServerURL(), rackclient.OperationsTimeout).Clientset(ctx)
			if err != nil {
				return err
			}
			dir := filepath.Join(g.artifacts, "rehearsal")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, "runbook.txt"), []byte(rb.Text()), 0o644); err != nil {
				return err
			}
			l := &upgrade.Lab{Rack: r, Nodes: nodes, Kube: cs, Kit: kit, Logs: dir, Out: out,
				DrainTimeout: drainTimeout, ReadyTimeout: 5 * time.Minute}
			start := time.Now()
			marks, perr := l.Perform(ctx, rb, nil)
			rec.Steps = marks
			if perr != nil {
				rec.Error = perr.Error()
			}
			if list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err == nil {
				rec.Kubelets = map[string]string{}
				for _, n := range list.Items {
					rec.Kubelets[n.Name] = n.Status.NodeInfo.KubeletVersion
				}
			}
			data, _ := json.MarshalIndent(rec, "", "  ")
			if err := os.WriteFile(filepath.Join(dir, "steps.json"), data, 0o644); err != nil {
				return err
			}
			printRehearsal(cmd, rec, time.Since(start))
			fmt.Fprintf(out, "written to %s\n", dir)
			if perr != nil {
				var se *upgrade.StepError
				if errors.As(perr, &se) {
					return &failedError{msg: fmt.Sprintf("the upgrade to %s failed at %v\nthe lab is left as it is for inspection; `rackdrill down` then `rackdrill up` restore it", to, perr)}
				}
				return perr
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the release to upgrade the lab to ("+strings.Join(lab.ReleaseVersions(), ", ")+")")
	cmd.Flags().DurationVar(&drainTimeout, "drain-timeout", 10*time.Minute, "give up on a drain after this long (the runbook's kubectl drain --timeout)")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

func printRehearsal(cmd *cobra.Command, rec rehearsal, took time.Duration) {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "\nrehearsal of %s's upgrade %s -> %s: %d steps in %s (the kit: %s)\n", rec.Rack, rec.From, rec.To, len(rec.Steps),
		took.Round(time.Second), rec.KitBuild.Round(time.Second))
	for _, m := range rec.Steps {
		status := "ok"
		if m.Error != "" {
			status = "FAILED"
		}
		fmt.Fprintf(out, "  %2d. %-6s %8s  [%s] %s\n", m.Step, status, m.End.Sub(m.Start).Round(100*time.Millisecond), m.Where, m.What)
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
}
