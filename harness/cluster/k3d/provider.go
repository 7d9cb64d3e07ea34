package k3d

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/yaml"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/cluster/containers"
	"rackdrill.dev/rackdrill/harness/cluster/frp"
	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/topology"
)

// Binary is the k3d command the provider runs.
var Binary = "k3d"

// MissingError is a prerequisite of the k3d provider that this machine lacks.
type MissingError struct {
	What, Fix string
	Err       error
}

func (e *MissingError) Error() string {
	msg := "k3d provider: " + e.What
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg + " (" + e.Fix + ")"
}

func (e *MissingError) Unwrap() error { return e.Err }

// Prerequisites checks, in seconds and before anything is created, that the
// k3d binary runs and that Docker answers (the manifests are applied through
// the API: no kubectl is needed). The images (rancher/k3s, k3d's
// tools, MetalLB, FRP, the NFS server) are pulled by Up, which says which one
// could not be.
func Prerequisites(ctx context.Context) error {
	path, err := osexec.LookPath(Binary)
	if err != nil {
		return &MissingError{What: "the k3d binary is not on PATH", Err: err,
			Fix: "install k3d v5 from https://k3d.io, as .github/workflows/nightly.yml does; or use the containers provider, the offline lab"}
	}
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out, err := osexec.CommandContext(vctx, path, "version").CombinedOutput(); err != nil {
		return &MissingError{What: path + " does not run", Err: fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out))), Fix: "reinstall k3d v5"}
	}
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	defer dcancel()
	if out, err := osexec.CommandContext(dctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		return &MissingError{What: "Docker does not answer", Err: fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out))),
			Fix: "install Docker and start dockerd (`make setup` does on Debian)"}
	}
	return nil
}

// Provider builds a K3s rack in k3d: k3d creates the servers, agents and its
// load balancer from Config; Install adds what the topology documents; the
// machines are acted on through Docker like the lab's.
type Provider struct {
	rack      *topology.Rack
	artifacts string
	log       logr.Logger
	out       io.Writer
	nodes     *containers.Provider
}

// Option configures a Provider.
type Option func(*Provider)

// WithLogger logs through l.
func WithLogger(l logr.Logger) Option { return func(p *Provider) { p.log = l } }

// WithProgress prints each step of Up to w.
func WithProgress(w io.Writer) Option { return func(p *Provider) { p.out = w } }

// NewProvider returns the k3d provider of rack r; its config and kubeconfig go
// into artifacts.
func NewProvider(r *topology.Rack, artifacts string, opts ...Option) *Provider {
	p := &Provider{rack: r, artifacts: artifacts, log: logr.Discard(), out: io.Discard}
	for _, o := range opts {
		o(p)
	}
	p.nodes = containers.NewProvider(r.Metadata.Name, containers.WithLogger(p.log))
	return p
}

// ConfigFile is where Up writes the k3d config.
func (p *Provider) ConfigFile() string { return filepath.Join(p.artifacts, "k3d-config.yaml") }

// KubeconfigFile is where Up writes the cluster's kubeconfig (never into the
// user's ~/.kube/config).
func (p *Provider) KubeconfigFile() string { return filepath.Join(p.artifacts, "kubeconfig") }

func (p *Provider) k3d(ctx context.Context, args ...string) ([]byte, error) {
	cmd := osexec.CommandContext(ctx, Binary, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("k3d %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Up creates the cluster from the topology's k3d config, writes its
// kubeconfig and installs what the topology documents. A failed step leaves
// the cluster for `rackdrill down` (which removes it by its label and name).
func (p *Provider) Up(ctx context.Context, r *topology.Rack) error {
	if err := Prerequisites(ctx); err != nil {
		return err
	}
	c, err := Config(r)
	if err != nil {
		return fmt.Errorf("k3d config of %s: %w", r.Metadata.Name, err)
	}
	data, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(p.artifacts, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p.ConfigFile(), data, 0o644); err != nil {
		return err
	}
	step := func(name string, f func() error) error {
		fmt.Fprintf(p.out, "k3d: %s\n", name)
		start := time.Now()
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(p.out, "      done in %s\n", time.Since(start).Round(100*time.Millisecond))
		return nil
	}
	if err := step("pull "+c.Image, func() error { return pull(ctx, c.Image) }); err != nil {
		return err
	}
	if err := step("k3d cluster create --config "+p.ConfigFile(), func() error {
		_, err := p.k3d(ctx, "cluster", "create", "--config", p.ConfigFile())
		return err
	}); err != nil {
		return err
	}
	if err := step("kubeconfig into "+p.KubeconfigFile(), func() error {
		kc, err := p.k3d(ctx, "kubeconfig", "get", r.Metadata.Name)
		if err != nil {
			return err
		}
		return os.WriteFile(p.KubeconfigFile(), kc, 0o600)
	}); err != nil {
		return err
	}
	token := NewToken()
	if err := step("the NAS and the VPS (NFS server and frps containers)", func() error { return p.machines(ctx, r, token) }); err != nil {
		return err
	}
	var agent string
	if err := step("the agent image (built here) imported into the cluster", func() error {
		b, err := lab.NewRepoBuilder(p.out)
		if err != nil {
			return err
		}
		if _, err := b.Build(ctx, "agent"); err != nil {
			return err
		}
		if agent, err = b.Tag("agent"); err != nil {
			return err
		}
		_, err = p.k3d(ctx, "image", "import", agent, "--cluster", r.Metadata.Name)
		return err
	}); err != nil {
		return err
	}
	return step("install what the topology documents", func() error {
		return Install(ctx, r, p.KubeconfigFile(), token, agent, p.log)
	})
}

// pull fetches an image, naming it when it cannot be fetched.
func pull(ctx context.Context, image string) error {
	if out, err := osexec.CommandContext(ctx, "docker", "pull", "--quiet", image).CombinedOutput(); err != nil {
		return fmt.Errorf("image %s cannot be pulled: %w: %s", image, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func docker(ctx context.Context, args ...string) error {
	if out, err := osexec.CommandContext(ctx, "docker", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// machines starts the machines k3d does not have: the NAS (a kernel NFS
// server) on the k3d network, and the VPS (frps) on a network of its own,
// the Internet, also reachable from the rack. Each carries the rack's labels,
// so that faults act on them like on the lab's machines and down removes them.
func (p *Provider) machines(ctx context.Context, r *topology.Rack, token string) error {
	name := r.Metadata.Name
	labels := func(n *topology.Node) []string {
		var roles []string
		for _, ro := range n.Roles {
			roles = append(roles, string(ro))
		}
		return []string{"--label", containers.LabelRack + "=" + name, "--label", containers.LabelNode + "=" + n.Name,
			"--label", containers.LabelRoles + "=" + strings.Join(roles, ","), "--label", containers.LabelAddress + "=" + n.Address}
	}
	if st := r.Spec.Storage; st != nil && st.NFS != nil {
		n := r.Node(st.NFS.Node)
		if err := pull(ctx, NFSServerImage); err != nil {
			return err
		}
		if err := docker(ctx, "volume", "create", "--label", containers.LabelRack+"="+name, name+"-nfs"); err != nil {
			return err
		}
		args := append([]string{"run", "--detach", "--name", name + "-" + n.Name, "--hostname", n.Name, "--privileged"}, labels(n)...)
		args = append(args, "--network", "k3d-"+name, "--ip", n.Address, "--volume", name+"-nfs:"+st.NFS.Exports[0],
			"--env", "NFS_EXPORT_0="+st.NFS.Exports[0]+" *(rw,fsid=0,no_subtree_check,no_root_squash,insecure)", NFSServerImage)
		if err := docker(ctx, args...); err != nil {
			return err
		}
	}
	if t := r.Spec.Tunnel; t != nil {
		n := r.Node(t.Server.Node)
		inet := r.InternetNetwork()
		if inet == nil {
			return fmt.Errorf("spec.networks: the VPS needs a network with purpose internet")
		}
		if err := pull(ctx, FRPSImage); err != nil {
			return err
		}
		if err := docker(ctx, "network", "create", "--label", containers.LabelRack+"="+name, "--subnet", inet.CIDR, name+"-internet"); err != nil {
			return err
		}
		conf := filepath.Join(p.artifacts, "frps.toml")
		if err := os.WriteFile(conf, []byte(frp.ServerConfig(token)), 0o600); err != nil {
			return err
		}
		abs, err := filepath.Abs(conf)
		if err != nil {
			return err
		}
		args := append([]string{"run", "--detach", "--name", name + "-" + n.Name, "--hostname", n.Name}, labels(n)...)
		args = append(args, "--network", name+"-internet", "--ip", n.Address, "--volume", abs+":/etc/frp/frps.toml:ro", FRPSImage, "-c", "/etc/frp/frps.toml")
		if err := docker(ctx, args...); err != nil {
			return err
		}
		rackSide, err := VPSRackAddress(r)
		if err != nil {
			return err
		}
		if err := docker(ctx, "network", "connect", "--ip", rackSide.String(), "k3d-"+name, name+"-"+n.Name); err != nil {
			return err
		}
	}
	return nil
}

// Kubeconfig is the cluster's admin kubeconfig.
func (p *Provider) Kubeconfig(ctx context.Context) ([]byte, error) {
	data, err := os.ReadFile(p.KubeconfigFile())
	if err == nil {
		return data, nil
	}
	if _, lerr := osexec.LookPath(Binary); lerr != nil {
		return nil, fmt.Errorf("kubeconfig of %s: %w", p.rack.Metadata.Name, err)
	}
	return p.k3d(ctx, "kubeconfig", "get", p.rack.Metadata.Name)
}

// Nodes are the k3d containers (servers, agents, the serverlb) and the
// containers Up adds (NFS server, frps), each carrying the rack's labels.
func (p *Provider) Nodes(ctx context.Context) ([]cluster.Node, error) { return p.nodes.Nodes(ctx) }

// Down deletes the k3d cluster, then everything else carrying the rack's label.
// Idempotent; it works without k3d (the containers go by label).
func (p *Provider) Down(ctx context.Context) error {
	var errs []error
	if _, err := osexec.LookPath(Binary); err == nil {
		if _, err := p.k3d(ctx, "cluster", "delete", p.rack.Metadata.Name); err != nil && !strings.Contains(err.Error(), "No nodes found") {
			errs = append(errs, err)
		}
	}
	errs = append(errs, p.nodes.Down(ctx))
	return errors.Join(errs...)
}

var _ cluster.Provider = (*Provider)(nil)

var _ cluster.Preparer = (*Provider)(nil)

// Prepare checks the prerequisites (k3d, Docker) in seconds.
func (p *Provider) Prepare(ctx context.Context) error { return Prerequisites(ctx) }
