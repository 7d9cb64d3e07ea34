package containers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/go-logr/logr"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/topology"
)

// Labels every Docker object of a rack carries. Cleanup and status find things by
// these labels, never by name patterns, so a crashed run leaves nothing that
// `rackdrill down` cannot find.
const (
	LabelRack    = "rackdrill.dev/rack"
	LabelNode    = "rackdrill.dev/node"
	LabelRoles   = "rackdrill.dev/roles"
	LabelAddress = "rackdrill.dev/address"
	LabelImage   = "rackdrill.dev/image"
)

// Option configures a Provider.
type Option func(*Provider)

// WithLogger sets the logger; the default discards.
func WithLogger(l logr.Logger) Option { return func(p *Provider) { p.log = l } }

// WithStopTimeout sets how long a graceful stop may take before Docker kills the
// node (systemd in a node container needs a few seconds to reach poweroff).
func WithStopTimeout(seconds int) Option { return func(p *Provider) { p.stopTimeout = seconds } }

// Provider is the rack as Docker containers on this machine.
type Provider struct {
	rack          string
	log           logr.Logger
	stopTimeout   int
	progress      io.Writer
	artifacts     string
	keepOnFailure bool
	intervals     Intervals

	once   sync.Once
	docker *client.Client
	err    error
}

// NewProvider returns the provider of the rack named rack. It connects to Docker
// lazily, on first use.
func NewProvider(rack string, opts ...Option) *Provider {
	p := &Provider{rack: rack, log: logr.Discard(), stopTimeout: 30, artifacts: "_artifacts", intervals: DefaultIntervals()}
	for _, o := range opts {
		o(p)
	}
	// testcontainers-go's settings are the process's: made once, by the first
	// provider (its logger gets testcontainers' debug lines).
	testcontainersOnce.Do(func() {
		ConfigureTestcontainers()
		// testcontainers-go logs to stderr by default; here it is a debug detail.
		tclog.SetDefault(logrPrintf{p.log.V(2)})
	})
	return p
}

var testcontainersOnce sync.Once

// logrPrintf adapts a logr.Logger to testcontainers-go's Printf logger.
type logrPrintf struct{ l logr.Logger }

func (a logrPrintf) Printf(format string, v ...any) {
	a.l.Info(strings.TrimSpace(fmt.Sprintf(format, v...)))
}

var _ cluster.NodeLister = (*Provider)(nil)

// ConfigureTestcontainers sets the two testcontainers-go settings this provider
// needs, unless the user set them: no Ryuk (its image cannot be pulled offline,
// and the lab must outlive the process that built it: cleanup is by label), and
// loopback as the host of mapped ports (testcontainers takes a machine with a
// /.dockerenv for a container and would use the default gateway, an address that
// is not ours). It must run before testcontainers reads its configuration.
func ConfigureTestcontainers() {
	for k, v := range map[string]string{
		"TESTCONTAINERS_RYUK_DISABLED": "true",
		"TESTCONTAINERS_HOST_OVERRIDE": "127.0.0.1",
	} {
		if _, set := os.LookupEnv(k); !set {
			_ = os.Setenv(k, v)
		}
	}
}

func (p *Provider) client(ctx context.Context) (*client.Client, error) {
	p.once.Do(func() {
		dc, err := testcontainers.NewDockerClientWithOpts(ctx)
		if err != nil {
			p.err = fmt.Errorf("connect to Docker (is dockerd running? `make setup` starts it): %w", err)
			return
		}
		p.docker = dc.Client
	})
	return p.docker, p.err
}

func (p *Provider) rackFilter() client.Filters {
	return client.Filters{}.Add("label", LabelRack+"="+p.rack)
}

// Nodes lists the rack's node containers, running or not, sorted by name.
func (p *Provider) Nodes(ctx context.Context) ([]cluster.Node, error) {
	dc, err := p.client(ctx)
	if err != nil {
		return nil, err
	}
	res, err := dc.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: p.rackFilter().Add("label", LabelNode)})
	if err != nil {
		return nil, fmt.Errorf("list nodes of rack %s: %w", p.rack, err)
	}
	var nodes []cluster.Node
	for _, c := range res.Items {
		n := &node{p: p, id: c.ID, name: c.Labels[LabelNode]}
		for _, r := range strings.Split(c.Labels[LabelRoles], ",") {
			if r != "" {
				n.roles = append(n.roles, topology.Role(r))
			}
		}
		n.addr, _ = netip.ParseAddr(c.Labels[LabelAddress])
		if !n.addr.IsValid() && c.NetworkSettings != nil {
			// A machine whose address Docker assigned (k3d's nodes): its
			// address on its first network, by name.
			for _, name := range slices.Sorted(maps.Keys(c.NetworkSettings.Networks)) {
				if ep := c.NetworkSettings.Networks[name]; ep != nil && ep.IPAddress.IsValid() {
					n.addr = ep.IPAddress
					break
				}
			}
		}
		nodes = append(nodes, n)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name() < nodes[j].Name() })
	return nodes, nil
}

// Down removes every container, network and volume of the rack. It is
// idempotent: a rack that is already gone is not an error.
func (p *Provider) Down(ctx context.Context) error {
	dc, err := p.client(ctx)
	if err != nil {
		return err
	}
	var errs []error
	cs, err := dc.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: p.rackFilter()})
	if err != nil {
		return fmt.Errorf("list containers of rack %s: %w", p.rack, err)
	}
	for _, c := range cs.Items {
		p.log.V(1).Info("removing container", "id", c.ID[:12], "names", c.Names)
		if _, err := dc.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", c.ID[:12], err))
		}
	}
	ns, err := dc.NetworkList(ctx, client.NetworkListOptions{Filters: p.rackFilter()})
	if err != nil {
		errs = append(errs, fmt.Errorf("list networks of rack %s: %w", p.rack, err))
	} else {
		for _, n := range ns.Items {
			if _, err := dc.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
			}
		}
	}
	vs, err := dc.VolumeList(ctx, client.VolumeListOptions{Filters: p.rackFilter()})
	if err != nil {
		errs = append(errs, fmt.Errorf("list volumes of rack %s: %w", p.rack, err))
	} else {
		for _, v := range vs.Items {
			if _, err := dc.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true}); err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("remove volume %s: %w", v.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// isNotFound is the Docker client's typed "not found": Docker words it
// differently for containers, networks and volumes.
func isNotFound(err error) bool { return cerrdefs.IsNotFound(err) }

// node is one container of the rack.
type node struct {
	p     *Provider
	id    string
	name  string
	roles []topology.Role
	addr  netip.Addr
}

var _ cluster.Node = (*node)(nil)

func (n *node) Name() string           { return n.name }
func (n *node) Roles() []topology.Role { return n.roles }
func (n *node) Addr() netip.Addr       { return n.addr }
func (n *node) String() string         { return n.name }
func (n *node) dc() *client.Client     { return n.p.docker }
func (n *node) short() string          { return n.id[:12] }
func (n *node) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s node %s (container %s): %w", op, n.name, n.short(), err)
}

// Stop halts the node gracefully: Docker sends the image's stop signal
// (SIGRTMIN+3 for systemd, which then powers off) and kills after the timeout.
func (n *node) Stop(ctx context.Context) error {
	t := n.p.stopTimeout
	_, pid, _ := n.inspect(ctx)
	fzs, _ := n.freezers(pid)
	_, err := n.dc().ContainerStop(ctx, n.id, client.ContainerStopOptions{Timeout: &t})
	if err == nil {
		return nil
	}
	return n.thawHeld(ctx, "stop", fzs, err)
}

// Kill is a hard power loss: SIGKILL to every process of the node. A
// process frozen inside (runc freezes a pod container's cgroup while it
// applies its settings) would keep the machine half dead, its init a zombie:
// what is frozen is thawed, and the kill completes.
func (n *node) Kill(ctx context.Context) error {
	running, pid, err := n.inspect(ctx)
	if err != nil || !running {
		return err
	}
	fzs, _ := n.freezers(pid)
	_, err = n.dc().ContainerKill(ctx, n.id, client.ContainerKillOptions{Signal: "KILL"})
	if err == nil {
		return nil
	}
	return n.thawHeld(ctx, "kill", fzs, err)
}

// Start powers the node on; a no-op if it runs.
func (n *node) Start(ctx context.Context) error {
	running, err := n.Running(ctx)
	if err != nil || running {
		return err
	}
	_, err = n.dc().ContainerStart(ctx, n.id, client.ContainerStartOptions{})
	return n.wrap("start", err)
}

// Running reports whether the container runs.
func (n *node) Running(ctx context.Context) (bool, error) {
	running, _, err := n.inspect(ctx)
	return running, err
}

// inspect reads whether the container runs and the pid of its init.
func (n *node) inspect(ctx context.Context) (running bool, pid int, err error) {
	res, err := n.dc().ContainerInspect(ctx, n.id, client.ContainerInspectOptions{})
	if err != nil {
		return false, 0, n.wrap("inspect", err)
	}
	if st := res.Container.State; st != nil {
		return st.Running, st.Pid, nil
	}
	return false, 0, nil
}

// Command runs a command in the node, as docker exec does.
func (n *node) Command(ctx context.Context, name string, args ...string) exec.Cmd {
	c := &execCmd{n: n, ctx: ctx}
	c.Init(c, append([]string{name}, args...))
	return c
}

type execCmd struct {
	exec.Settings
	n   *node
	ctx context.Context
}

func (c *execCmd) Run() error {
	fail := func(err error) error {
		return &exec.RunError{Command: c.Argv, Err: fmt.Errorf("on node %s: %w", c.n.name, err)}
	}
	dc := c.n.dc()
	created, err := dc.ExecCreate(c.ctx, c.n.id, client.ExecCreateOptions{
		Cmd: c.Argv, Env: c.Env, WorkingDir: c.Dir, AttachStdin: c.Stdin != nil, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return fail(err)
	}
	att, err := dc.ExecAttach(c.ctx, created.ID, client.ExecAttachOptions{})
	if err != nil {
		return fail(err)
	}
	defer att.Close()
	if c.Stdin != nil {
		go func() {
			_, _ = io.Copy(att.Conn, c.Stdin)
			if cw, ok := att.Conn.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			}
		}()
	}
	stdout, stderr := c.Stdout, c.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	done := make(chan error, 1)
	go func() { _, err := stdcopy.StdCopy(stdout, stderr, att.Reader); done <- err }()
	select {
	case <-c.ctx.Done():
		return fail(c.ctx.Err())
	case err := <-done:
		if err != nil {
			return fail(err)
		}
	}
	res, err := dc.ExecInspect(c.ctx, created.ID, client.ExecInspectOptions{})
	if err != nil {
		return fail(err)
	}
	if res.ExitCode != 0 {
		return fail(fmt.Errorf("exit status %d", res.ExitCode))
	}
	return nil
}

// systemdPoweroffExit is a node container's exit status when its systemd
// powered off: reboot(2) in a PID namespace ends its init with SIGINT (128+2).
// A docker kill ends it with SIGKILL (137).
const systemdPoweroffExit = 130

// LastHalt tells how the container last stopped: cleanly when systemd reached
// poweroff (exit 130 and systemd's "Powering off." last in its console).
func (n *node) LastHalt(ctx context.Context) (cluster.Halt, error) {
	res, err := n.dc().ContainerInspect(ctx, n.id, client.ContainerInspectOptions{})
	if err != nil {
		return cluster.Halt{}, n.wrap("inspect", err)
	}
	st := res.Container.State
	if st == nil || st.Running {
		return cluster.Halt{}, fmt.Errorf("node %s is running: it has not halted", n.name)
	}
	h := cluster.Halt{Detail: fmt.Sprintf("exit status %d", st.ExitCode)}
	if t, err := time.Parse(time.RFC3339Nano, st.FinishedAt); err == nil {
		h.At = t
	}
	if st.OOMKilled {
		h.Detail += ", killed for lack of memory"
		return h, nil
	}
	if st.ExitCode != systemdPoweroffExit {
		return h, nil
	}
	logs, err := n.dc().ContainerLogs(ctx, n.id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "20"})
	if err != nil {
		return h, n.wrap("read the console of", err)
	}
	defer logs.Close()
	var out strings.Builder
	if cfg := res.Container.Config; cfg != nil && cfg.Tty {
		_, _ = io.Copy(&out, io.LimitReader(logs, 1<<20)) // a TTY's log is not multiplexed
	} else {
		_, _ = stdcopy.StdCopy(&out, &out, io.LimitReader(logs, 1<<20))
	}
	if strings.Contains(out.String(), "Powering off.") {
		h.Clean, h.Detail = true, h.Detail+", systemd reached poweroff"
	} else {
		h.Detail += ", but systemd's console does not say it powered off"
	}
	return h, nil
}

var _ cluster.HaltReporter = (*node)(nil)
