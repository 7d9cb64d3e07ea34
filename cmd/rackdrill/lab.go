package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/signal"
	"sort"
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
	kc, fallback := g.kubeconfigFiles()
	base := []providers.Option{providers.WithLogger(newLogger(cmd.ErrOrStderr(), g.verbosity)),
		providers.WithArtifacts(g.artifacts), providers.WithLabWaits(waits), providers.WithKubeconfig(kc, fallback)}
	p, err := providers.For(r, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", g.topology, err)
	}
	return p, nil
}

// builtRack is the rack of the topology and its provider, for `up` and `down`,
// which act only on racks rackdrill builds (the lab, k3d): an
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

// rackStatus is what `rackdrill status` finds: -o json prints it as is.
type rackStatus struct {
	Kind     string          `json:"kind"`
	Rack     string          `json:"rack"`
	Provider string          `json:"provider"`
	Up       bool            `json:"up"`
	Machines []machineStatus `json:"machines"`
	VIP      *vipStatus      `json:"vip,omitempty"`
	API      componentStatus `json:"api"`
	Probes   []probeStatus   `json:"probes,omitempty"`
	UPS      *upsStatus      `json:"ups,omitempty"`
	// Problems is every reason the rack is not up, one per line.
	Problems []string `json:"problems,omitempty"`
}

type machineStatus struct {
	Name    string   `json:"name"`
	Roles   []string `json:"roles"`
	Address string   `json:"address"`
	State   string   `json:"state"` // up, down, unknown: …
}

type vipStatus struct {
	Address string `json:"address"`
	Holder  string `json:"holder"` // "nobody" when no machine has it
}

type componentStatus struct {
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

type probeStatus struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

type upsStatus struct {
	Name   string `json:"name"`
	Node   string `json:"node"`
	Status string `json:"status"`
}

func newStatusCommand(g *globalOptions) *cobra.Command {
	var resources bool
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "One line per machine and per component of the rack; exit 1 when the rack is not up",
		Long: `status looks at the rack of the topology, whatever its provider: each machine
(the lab's containers, or a real rack's machines over SSH), who holds the API
VIP, the Kubernetes API through the endpoint kubectl uses, one request of each
probe that only looks, and the UPS. It changes nothing.

Exit status 0 when every machine is up, the API answers and every probe is
green; 1 when the rack is not up (each reason printed); 2 when it cannot look.`,
		Example: `  rackdrill status
  rackdrill status --topology my-rack.yaml -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output %q: want text or json", output)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			r, err := loadRack(g.topology, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if resources && r.Spec.Provider != topology.ProviderContainers {
				return fmt.Errorf("--resources: docker stats of the lab's containers; rack %s is provider %s", r.Metadata.Name, r.Spec.Provider)
			}
			p, err := providerFor(cmd, g, r)
			if err != nil {
				return err
			}
			defer providers.Close(p)
			st, err := lookAtRack(ctx, p, r)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(st); err != nil {
					return err
				}
			} else {
				printStatus(out, st)
			}
			if resources && len(st.Machines) > 0 {
				if err := printResources(ctx, cmd, r); err != nil {
					return err
				}
			}
			if !st.Up {
				return &failedError{msg: fmt.Sprintf("rack %s is not up (%d problem(s), above)", r.Metadata.Name, len(st.Problems))}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&resources, "resources", false, "also the memory and CPU of every machine (docker stats; the lab only)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

// lookAtRack reads the rack's state, changing nothing.
func lookAtRack(ctx context.Context, p cluster.Provider, r *topology.Rack) (*rackStatus, error) {
	st := &rackStatus{Kind: "Status", Rack: r.Metadata.Name, Provider: string(r.Spec.Provider)}
	nodes, err := p.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	if len(nodes) == 0 {
		st.Problems = append(st.Problems, fmt.Sprintf("no machine of rack %s exists (no container labelled %s=%s): rackdrill up builds it", r.Metadata.Name, containers.LabelRack, r.Metadata.Name))
		return st, nil
	}
	var vip string
	if r.Spec.ControlPlane.Keepalived != nil {
		vip = r.Spec.ControlPlane.Endpoint.Host
		st.VIP = &vipStatus{Address: vip, Holder: "nobody"}
	}
	for _, n := range nodes {
		running, err := n.Running(ctx)
		ms := machineStatus{Name: n.Name(), Address: n.Addr().String(), State: "down"}
		for _, ro := range n.Roles() {
			ms.Roles = append(ms.Roles, string(ro))
		}
		switch {
		case err != nil:
			ms.State = "unknown: " + err.Error()
			st.Problems = append(st.Problems, n.Name()+" "+ms.State)
		case running:
			ms.State = "up"
		default:
			st.Problems = append(st.Problems, n.Name()+" is down")
		}
		st.Machines = append(st.Machines, ms)
		if vip != "" && running {
			if o, err := exec.Output(n.Command(ctx, "ip", "-4", "-o", "addr", "show")); err == nil && strings.Contains(string(o), " "+vip+"/") {
				st.VIP.Holder = n.Name()
			}
		}
	}
	if st.VIP != nil && st.VIP.Holder == "nobody" {
		st.Problems = append(st.Problems, "no machine holds the API VIP "+vip)
	}
	st.API.OK, st.API.Detail = apiStatus(ctx, p, r)
	if !st.API.OK {
		st.Problems = append(st.Problems, "the Kubernetes API "+st.API.Detail)
	}
	st.Probes = lookWithProbes(ctx, p, r)
	for _, pr := range st.Probes {
		if !pr.OK {
			st.Problems = append(st.Problems, "probe "+pr.Name+" is red: "+pr.Detail)
		}
	}
	if u := r.Spec.UPS; u != nil {
		us := &upsStatus{Name: u.Name, Node: u.Node, Status: "unknown"}
		for _, n := range nodes {
			if n.Name() == u.Node {
				if o, err := exec.Output(n.Command(ctx, "upsc", u.Name+"@localhost", "ups.status")); err == nil {
					us.Status = strings.TrimSpace(string(o))
				} else {
					us.Status = "not answering: " + err.Error()
				}
			}
		}
		if us.Status != "OL" {
			st.Problems = append(st.Problems, fmt.Sprintf("UPS %s on %s: %s (OL is on line)", u.Name, u.Node, us.Status))
		}
		st.UPS = us
	}
	st.Up = len(st.Problems) == 0
	return st, nil
}

func printStatus(out io.Writer, st *rackStatus) {
	if len(st.Machines) == 0 {
		fmt.Fprintf(out, "rack %s is not up: %s\n", st.Rack, strings.Join(st.Problems, "; "))
		return
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "MACHINE\tROLES\tADDRESS\tSTATE")
	for _, m := range st.Machines {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", m.Name, strings.Join(m.Roles, ","), m.Address, m.State)
	}
	w.Flush()
	if st.VIP != nil {
		fmt.Fprintf(out, "API VIP %s: held by %s\n", st.VIP.Address, st.VIP.Holder)
	}
	fmt.Fprintf(out, "Kubernetes API: %s\n", st.API.Detail)
	var parts []string
	for _, pr := range st.Probes {
		switch {
		case strings.HasPrefix(pr.Detail, "not probed"):
			parts = append(parts, pr.Name+" "+pr.Detail)
		case pr.OK:
			parts = append(parts, pr.Name+" green")
		default:
			parts = append(parts, fmt.Sprintf("%s RED (%s)", pr.Name, pr.Detail))
		}
	}
	fmt.Fprintf(out, "probes: %s\n", strings.Join(parts, "; "))
	if st.UPS != nil {
		fmt.Fprintf(out, "UPS %s on %s: %s\n", st.UPS.Name, st.UPS.Node, st.UPS.Status)
	}
	if st.Up {
		fmt.Fprintf(out, "rack %s is up\n", st.Rack)
		return
	}
	fmt.Fprintf(out, "rack %s is not up:\n", st.Rack)
	for _, p := range st.Problems {
		fmt.Fprintf(out, "  %s\n", p)
	}
}

// apiStatus answers through the VIP, as kubectl would.
func apiStatus(ctx context.Context, p cluster.KubeconfigSource, r *topology.Rack) (bool, string) {
	kc, err := p.Kubeconfig(ctx)
	if err != nil {
		return false, "has no kubeconfig: " + err.Error()
	}
	cfg, err := rackclient.OperationsConfig(kc, r.APIServerURL(), rackclient.OperationsTimeout)
	if err != nil {
		return false, err.Error()
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return false, err.Error()
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	nodes, err := cs.CoreV1().Nodes().List(actx, metav1.ListOptions{})
	if err != nil {
		return false, "does not answer through " + r.APIServerURL() + ": " + err.Error()
	}
	ready := 0
	for _, n := range nodes.Items {
		for _, c := range n.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" {
				ready++
			}
		}
	}
	detail := fmt.Sprintf("answers through %s; %d of %d nodes Ready", r.APIServerURL(), ready, len(nodes.Items))
	return ready == len(nodes.Items) && ready > 0, detail
}

// lookWithProbes runs once each probe that only looks (heal deletes a pod and
// data needs records written before a fault: drills run those).
func lookWithProbes(ctx context.Context, p cluster.Provider, r *topology.Rack) []probeStatus {
	probes, unprobed, _, err := probe.ForRack(ctx, r, p, logr.Discard())
	if err != nil {
		return []probeStatus{{Name: "probes", Detail: err.Error()}}
	}
	var out []probeStatus
	for _, pr := range probes {
		if pr.Name() == "heal" || pr.Name() == "data" {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, r.Spec.Probes.Timeout.Duration)
		res := pr.Check(cctx)
		cancel()
		ps := probeStatus{Name: pr.Name(), OK: res.OK}
		if !res.OK && res.Err != nil {
			ps.Detail = res.Err.Error()
		}
		out = append(out, ps)
	}
	names := make([]string, 0, len(unprobed))
	for name := range unprobed {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		// Not a problem: the rack has no such path (no UPS, no tunnel).
		out = append(out, probeStatus{Name: name, OK: true, Detail: "not probed (" + unprobed[name] + ")"})
	}
	return out
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
