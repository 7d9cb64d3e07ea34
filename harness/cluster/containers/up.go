package containers

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/template"
	"time"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/internal/render"
	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/rackclient"
	"rackdrill.dev/rackdrill/harness/topology"
)

//go:embed templates
var templates embed.FS

var tmpl = render.Must(templates, "templates/*.tmpl", template.FuncMap{
	"add": func(a, b int) int { return a + b },
	"indent": func(n int, s string) string {
		pad := strings.Repeat(" ", n)
		return pad + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+pad)
	},
})

// LabelNetwork names a rack network's role (lan, internet).
const LabelNetwork = "rackdrill.dev/network"

// UpError is a failed step of Up: the step, the node, and the end of that
// node's log, so that the user sees why without digging.
type UpError struct {
	Step    string
	Node    string
	Err     error
	LogTail string
}

func (e *UpError) Error() string {
	s := "up: " + e.Step
	if e.Node != "" {
		s += " on node " + e.Node
	}
	s += ": " + e.Err.Error()
	if e.LogTail != "" {
		s += "\nlast lines of " + e.Node + "'s journal:\n" + e.LogTail
	}
	return s
}

func (e *UpError) Unwrap() error { return e.Err }

// WithProgress sends one line per step of Up to w.
func WithProgress(w io.Writer) Option { return func(p *Provider) { p.progress = w } }

// WithArtifacts sets the folder Up writes the kubeconfig and SSH keys into.
func WithArtifacts(dir string) Option { return func(p *Provider) { p.artifacts = dir } }

// WithKeepOnFailure keeps a half-built rack for inspection.
func WithKeepOnFailure(keep bool) Option { return func(p *Provider) { p.keepOnFailure = keep } }

// Up builds the rack r as containers and returns when the API answers through
// the VIP with every node Ready. A failed Up removes what it made, unless
// WithKeepOnFailure.
func (p *Provider) Up(ctx context.Context, r *topology.Rack) (err error) {
	if r.Metadata.Name != p.rack {
		return fmt.Errorf("up: provider of rack %s asked to build rack %s", p.rack, r.Metadata.Name)
	}
	if ups := r.Spec.UPS; ups != nil && !ups.NUT() {
		return fmt.Errorf("up: spec.ups.commands: the lab's UPS is NUT's dummy-ups, drilled through its battery; commands are for a real rack's UPS that NUT does not run (provider ssh): leave them out of a lab topology")
	}
	start := time.Now()
	u := &upRun{p: p, r: r, nodes: map[string]*node{}}
	// building: past the first step's checks, which create nothing. A rack
	// refused there (one is up already, an image is missing) is not this
	// up's to remove.
	building := false
	defer func() {
		if err != nil && building && !p.keepOnFailure {
			p.step("removing the half-built rack (--keep-on-failure keeps it)")
			if derr := p.Down(context.WithoutCancel(ctx)); derr != nil {
				err = errors.Join(err, fmt.Errorf("clean up: %w", derr))
			}
		}
	}()
	// skip, when set, says why the rack has nothing for a step to do.
	skip := func(absent bool, why string) string {
		if absent {
			return why
		}
		return ""
	}
	cp := r.Spec.ControlPlane
	var lbParts []string
	if cp.Keepalived != nil {
		lbParts = append(lbParts, "keepalived")
	}
	if cp.HAProxy != nil {
		lbParts = append(lbParts, "HAProxy")
	}
	type step struct {
		name string
		fn   func(context.Context) error
		skip string
	}
	// The Kubernetes distribution's own steps, kubeadm's or K3s's: the
	// cluster formed, then (after the pod network) its DNS.
	join := []step{
		{"start containerd and import the preloaded images", u.runtimes, ""},
		{"kubeadm init on the first server", u.kubeadmInit, ""},
		{"join the other servers (stacked etcd)", u.joinServers, ""},
		{"join the workers", u.joinWorkers, ""},
	}
	dns := step{"run CoreDNS on the workers, one per node", u.spreadDNS, ""}
	if u.isK3s() {
		join = []step{
			{"write the pods' resolv.conf (K3s imports the preloaded images itself)", u.k3sResolv, ""},
			{"k3s server --cluster-init on the first server (embedded etcd)", u.k3sInit, ""},
			{"k3s server on the other servers, joining through the first", u.k3sJoinServers, ""},
			{"k3s agent on the workers, through the API endpoint", u.k3sJoinAgents, ""},
		}
		dns = step{"deploy CoreDNS (K3s's is disabled) on the workers, one per node", u.k3sDNS, ""}
	}
	steps := slices.Concat([]step{
		{"check images and Docker", u.preflight, ""},
		{"create networks", u.networks, ""},
		{"start the Internet vantage point", u.vantage, ""},
		{"start machines", u.machines, ""},
		{"wait for systemd on every machine", u.boot, ""},
		{"SSH access: the rack's key, known_hosts, checked", u.sshAccess, ""},
		{"start the API load balancers (" + strings.Join(lbParts, " + ") + ")", u.loadBalancers, skip(len(lbParts) == 0, "the API endpoint has no keepalived or HAProxy")},
		{"start the NAS (nfs-ganesha)", u.nas, ""},
	}, join, []step{
		{"configure pod networking (ptp, routes)", u.podNetwork, ""},
		{"wait for every node Ready", u.nodesReady, ""},
		dns,
		{"install MetalLB (layer 2)", u.metallb, skip(r.Spec.MetalLB == nil, "the rack has no MetalLB")},
		{"install the ingress controller", u.ingress, ""},
		{"deploy the probe workloads and the demo app", u.workloads, ""},
		{"start the tunnel to the VPS (frps and frpc, or ssh -R)", u.tunnel, skip(r.Spec.Tunnel == nil, "the rack has no tunnel")},
		{"start the UPS (NUT, dummy-ups, upsmon with the rack's shutdown)", u.ups, ""},
	})
	for i, s := range steps {
		t0 := time.Now()
		building = i > 0
		if s.skip != "" {
			p.step(fmt.Sprintf("[%2d/%d] %s: nothing to do, %s", i+1, len(steps), s.name, s.skip))
			continue
		}
		p.step(fmt.Sprintf("[%2d/%d] %s", i+1, len(steps), s.name))
		if err := s.fn(ctx); err != nil {
			var ue *UpError
			if !errors.As(err, &ue) {
				err = &UpError{Step: s.name, Err: err}
			}
			return err
		}
		p.step(fmt.Sprintf("        done in %s", time.Since(t0).Round(100*time.Millisecond)))
	}
	p.step(fmt.Sprintf("rack %s is up in %s; kubeconfig: %s", r.Metadata.Name, time.Since(start).Round(time.Second), p.kubeconfigPath()))
	return nil
}

func (p *Provider) step(msg string) {
	if p.progress != nil {
		fmt.Fprintln(p.progress, msg)
	}
	p.log.V(1).Info(msg)
}

func (p *Provider) kubeconfigPath() string { return filepath.Join(p.artifacts, "kubeconfig") }

// Kubeconfig returns the rack's admin kubeconfig, pointing at the VIP.
func (p *Provider) Kubeconfig(ctx context.Context) ([]byte, error) {
	nodes, err := p.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		for _, r := range n.Roles() {
			if r != topology.RoleServer {
				continue
			}
			// The provider knows the rack by name only: the server's
			// distribution is the one whose kubeconfig it has.
			for _, d := range distributions {
				if out, err := exec.Output(n.Command(ctx, "cat", d.AdminKubeconfig())); err == nil {
					return out, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("kubeconfig of rack %s: no server has %s or %s (is the rack up?)", p.rack,
		distributions[0].AdminKubeconfig(), distributions[1].AdminKubeconfig())
}

var _ cluster.KubeconfigSource = (*Provider)(nil)

// distributions are those the lab builds.
var distributions = []topology.Distribution{topology.DistributionKubeadm, topology.DistributionK3s}

// upRun is the state of one Up.
type upRun struct {
	p *Provider
	r *topology.Rack
	// What a step makes and a later step reads, with the step that makes it:
	image      string              // preflight: the node image's content tag
	token      string              // preflight: kubeadm's bootstrap token
	cert       string              // preflight: kubeadm's certificate key
	nets       map[string]string   // networks: topology network -> Docker network
	mu         sync.Mutex          // guards nodes while machines start them at once
	nodes      map[string]*node    // machines: every machine by name
	sshKey     []byte              // sshAccess: the rack's private key (PEM)
	knownHosts string              // sshAccess: every machine's host key
	podCIDRs   map[string]string   // podNetwork: each node's pod range
	ap         *rackclient.Applier // the first step that applies a manifest
	frps       string              // preflight: frps's binary, for an FRP tunnel
}

// each runs fn on the nodes in parallel and joins their errors.
func (u *upRun) each(nodes []*node, fn func(*node) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(n)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (u *upRun) withRole(role topology.Role) []*node {
	var out []*node
	for _, tn := range u.r.NodesWithRole(role) {
		out = append(out, u.nodes[tn.Name])
	}
	return out
}

func (u *upRun) all() []*node {
	var out []*node
	for _, tn := range u.r.Spec.Nodes {
		out = append(out, u.nodes[tn.Name])
	}
	return out
}

// fail wraps err of a step on node n with the end of n's journal.
func (u *upRun) fail(ctx context.Context, step string, n *node, err error) error {
	tail, _ := exec.Output(n.Command(context.WithoutCancel(ctx), "journalctl", "--no-pager", "-n", "12", "-o", "cat"))
	return &UpError{Step: step, Node: n.name, Err: err, LogTail: strings.TrimSpace(string(tail))}
}

// write puts content at path on n, streamed through a shell: a file docker cp
// puts into a tmpfs path (/tmp, /run) is not visible inside the container.
func write(ctx context.Context, n *node, path, content string) error {
	return exec.Run(n.Command(ctx, "sh", "-c", fmt.Sprintf("mkdir -p %q && cat > %q", filepath.Dir(path), path)).SetStdin(strings.NewReader(content)))
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

var _ cluster.Preparer = (*Provider)(nil)

// builder is the lab's image builder of this repository, its progress on
// the provider's.
func (p *Provider) builder() (*lab.Builder, error) {
	out := p.progress
	if out == nil {
		out = io.Discard
	}
	return lab.NewRepoBuilder(out)
}

// Prepare builds the lab's images from the repository, or finds them cached
// by their inputs' content hash (seconds).
func (p *Provider) Prepare(ctx context.Context) error {
	b, err := p.builder()
	if err != nil {
		return err
	}
	p.step("building the lab's images (seconds when they exist)")
	_, err = b.Build(ctx)
	return err
}
