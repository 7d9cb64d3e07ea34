package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/cluster/containers"
	"rackdrill.dev/rackdrill/harness/cluster/providers"
	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/probe"
	"rackdrill.dev/rackdrill/harness/rackclient"
	"rackdrill.dev/rackdrill/harness/topology"
)

// providerFor is the provider of rack r, configured from the global options
// (logger, artifacts, the lab's waits) and opts.
func providerFor(cmd *cobra.Command, g *globalOptions, r *topology.Rack, opts ...providers.Option) (cluster.Provider, error) {
	waits, err := containers.ParseIntervals(g.labWaits)
	if err != nil {
		return nil, fmt.Errorf("--lab-waits: %w", err)
	}
	base := []providers.Option{providers.WithLogger(newLogger(cmd.ErrOrStderr(), g.verbosity)),
		providers.WithArtifacts(g.artifacts), providers.WithLabWaits(waits)}
	p, err := providers.For(r, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", g.topology, err)
	}
	return p, nil
}

// builtRack is the rack of the topology and its provider, for `up`, `down` and
// `status`, which act only on racks rackdrill builds (the lab, k3d): an
// adopted rack is refused clearly.
func builtRack(cmd *cobra.Command, g *globalOptions, opts ...providers.Option) (*topology.Rack, cluster.Provider, error) {
	r, err := loadRack(g.topology, cmd.ErrOrStderr())
	if err != nil {
		return nil, nil, err
	}
	if !providers.Builds(r.Spec.Provider) {
		return nil, nil, fmt.Errorf("%s: rack %s is a real rack (spec.provider %s): rackdrill adopts it, it never builds, lists or removes its machines", g.topology, r.Metadata.Name, r.Spec.Provider)
	}
	p, err := providerFor(cmd, g, r, opts...)
	return r, p, err
}

func newUpCommand(g *globalOptions) *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Build the rack of the topology as Docker containers (the offline lab), or in k3d",
		Long: `up builds the rack as Docker containers on this machine from the lab's images
(make images): networks, machines, the API load balancers, kubeadm's control
plane and workers, pod networking. It prints every step with its time, and a
failed step names the node and shows the end of its journal. The kubeconfig is
written to the artifacts folder and points at the VIP.`,
		Example: `  rackdrill up
  rackdrill up --topology kind-configs/lab.yaml --keep-on-failure`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			r, p, err := builtRack(cmd, g, providers.WithProgress(cmd.OutOrStdout()), providers.WithKeepOnFailure(keep))
			if err != nil {
				return err
			}
			return p.Up(ctx, r)
		},
	}
	cmd.Flags().BoolVar(&keep, "keep-on-failure", false, "keep a half-built rack for inspection")
	return cmd
}

func newDownCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Remove every container, network and volume of the rack (found by label)",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Minute)
			defer cancel()
			r, p, err := builtRack(cmd, g)
			if err != nil {
				return err
			}
			if err := p.Down(ctx); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rack %s removed (everything labelled %s=%s)\n", r.Metadata.Name, containers.LabelRack, r.Metadata.Name)
			return nil
		},
	}
}

func newStatusCommand(g *globalOptions) *cobra.Command {
	var resources bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "One line per machine and per component of the rack",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			r, p, err := builtRack(cmd, g)
			if err != nil {
				return err
			}
			nodes, err := p.Nodes(ctx)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(nodes) == 0 {
				fmt.Fprintf(out, "rack %s is not up (no machine labelled %s=%s)\n", r.Metadata.Name, containers.LabelRack, r.Metadata.Name)
				return nil
			}
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "MACHINE\tROLES\tADDRESS\tSTATE")
			vipHolder := "nobody"
			var vip string
			if r.Spec.ControlPlane.Keepalived != nil {
				vip = r.Spec.ControlPlane.Endpoint.Host
			}
			for _, n := range nodes {
				running, err := n.Running(ctx)
				state := "down"
				if err != nil {
					state = "unknown: " + err.Error()
				} else if running {
					state = "up"
				}
				var roles []string
				for _, ro := range n.Roles() {
					roles = append(roles, string(ro))
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", n.Name(), strings.Join(roles, ","), n.Addr(), state)
				if vip != "" && running {
					if o, err := exec.Output(n.Command(ctx, "ip", "-4", "-o", "addr", "show")); err == nil && strings.Contains(string(o), " "+vip+"/") {
						vipHolder = n.Name()
					}
				}
			}
			w.Flush()
			if vip != "" {
				fmt.Fprintf(out, "API VIP %s: held by %s\n", vip, vipHolder)
			}
			fmt.Fprintf(out, "Kubernetes API: %s\n", apiStatus(ctx, p, r))
			printProbes(ctx, out, p, r)
			if u := r.Spec.UPS; u != nil {
				state := "unknown"
				for _, n := range nodes {
					if n.Name() == u.Node {
						if o, err := exec.Output(n.Command(ctx, "upsc", u.Name+"@localhost", "ups.status")); err == nil {
							state = strings.TrimSpace(string(o))
						} else {
							state = "not answering: " + err.Error()
						}
					}
				}
				fmt.Fprintf(out, "UPS %s on %s: %s\n", u.Name, u.Node, state)
			}
			if resources {
				return printResources(ctx, cmd, r)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&resources, "resources", false, "also the memory and CPU of every machine (docker stats)")
	return cmd
}

// apiStatus answers through the VIP, as kubectl would.
func apiStatus(ctx context.Context, p cluster.KubeconfigSource, r *topology.Rack) string {
	kc, err := p.Kubeconfig(ctx)
	if err != nil {
		return "no kubeconfig: " + err.Error()
	}
	cfg, err := rackclient.OperationsConfig(kc, r.APIServerURL(), rackclient.OperationsTimeout)
	if err != nil {
		return err.Error()
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err.Error()
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	nodes, err := cs.CoreV1().Nodes().List(actx, metav1.ListOptions{})
	if err != nil {
		return "not answering through " + r.APIServerURL() + ": " + err.Error()
	}
	ready := 0
	for _, n := range nodes.Items {
		for _, c := range n.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" {
				ready++
			}
		}
	}
	return fmt.Sprintf("answers through %s; %d of %d nodes Ready", r.APIServerURL(), ready, len(nodes.Items))
}

// printProbes runs once each probe that only looks (heal deletes a pod and
// data needs records written before a fault: drills run those).
func printProbes(ctx context.Context, out io.Writer, p cluster.Provider, r *topology.Rack) {
	probes, unprobed, _, err := probe.ForRack(ctx, r, p, logr.Discard())
	if err != nil {
		fmt.Fprintf(out, "probes: %v\n", err)
		return
	}
	var parts []string
	for _, pr := range probes {
		if pr.Name() == "heal" || pr.Name() == "data" {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, r.Spec.Probes.Timeout.Duration)
		res := pr.Check(cctx)
		cancel()
		if res.OK {
			parts = append(parts, pr.Name()+" green")
		} else {
			parts = append(parts, fmt.Sprintf("%s RED (%v)", pr.Name(), res.Err))
		}
	}
	for name, why := range unprobed {
		parts = append(parts, name+" not probed ("+why+")")
	}
	fmt.Fprintf(out, "probes: %s\n", strings.Join(parts, "; "))
}

// printResources prints docker stats of the rack's machines and their total.
func printResources(ctx context.Context, cmd *cobra.Command, r *topology.Rack) error {
	ids, err := exec.Output(exec.Local{}.Command(ctx, "docker", "ps", "-q", "--filter", "label="+containers.LabelRack+"="+r.Metadata.Name))
	if err != nil {
		return err
	}
	args := append([]string{"stats", "--no-stream", "--format", "{{.Name}}\t{{.MemUsage}}\t{{.CPUPerc}}"}, strings.Fields(string(ids))...)
	out, err := exec.Output(exec.Local{}.Command(ctx, "docker", args...))
	if err != nil {
		return err
	}
	var total float64
	fmt.Fprintln(cmd.OutOrStdout(), "\nMACHINE\tMEMORY\tCPU")
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fmt.Fprintln(cmd.OutOrStdout(), l)
		f := strings.Split(l, "\t")
		if len(f) > 1 {
			total += parseMiB(strings.TrimSpace(strings.Split(f[1], "/")[0]))
		}
	}
	fmt.Fprintf(cmd.OutOrStdout(), "total memory of rack %s: %.0f MiB (%.2f GiB)\n", r.Metadata.Name, total, total/1024)
	return nil
}

func parseMiB(s string) float64 {
	var v float64
	var unit string
	fmt.Sscanf(s, "%f%s", &v, &unit)
	switch unit {
	case "GiB":
		return v * 1024
	case "KiB":
		return v / 1024
	case "B":
		return v / 1024 / 1024
	}
	return v
}
