package ssh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/poll"
	"rackdrill.dev/rackdrill/harness/topology"
)

// DefaultDialTimeout bounds the TCP connect and the SSH handshake of a machine.
const DefaultDialTimeout = 10 * time.Second

// Option configures a Provider.
type Option func(*Provider)

// WithLogger logs through l (default: discard).
func WithLogger(l logr.Logger) Option { return func(p *Provider) { p.log = l } }

// WithAcceptNewHostKeys records the key of a host that known_hosts does not
// list yet (and says so), instead of refusing it. A changed key is always
// refused.
func WithAcceptNewHostKeys(accept bool) Option { return func(p *Provider) { p.acceptNew = accept } }

// WithKubeconfig reads the rack's kubeconfig from the files of a kubeconfig
// list (KUBECONFIG's syntax: several paths joined by the list separator,
// merged as kubectl merges them), for a rack whose admin kubeconfig is not on
// its servers. Give fallback to use the files only when no server has one.
func WithKubeconfig(paths string, fallback bool) Option {
	return func(p *Provider) { p.kubeconfig, p.kubeconfigFallback = paths, fallback }
}

// WithDialTimeout bounds each connection attempt.
func WithDialTimeout(d time.Duration) Option { return func(p *Provider) { p.dialTimeout = d } }

// Provider adopts a rack over SSH.
type Provider struct {
	rack        *topology.Rack
	log         logr.Logger
	acceptNew   bool
	dialTimeout time.Duration
	// kubeconfig is a kubeconfig list read instead of the servers' admin
	// kubeconfig, or (kubeconfigFallback) when no server has one.
	kubeconfig         string
	kubeconfigFallback bool

	// userConfig is the user's ~/.ssh/config (sshConfigPath), read for what
	// the topology leaves out; accesses are the machines' settings.
	sshConfigPath string
	accesses      map[string]access

	mu      sync.Mutex
	clients map[string]*gossh.Client
	dialing map[string]*sync.Mutex
	khMu    sync.Mutex // known_hosts is read and appended by every host's handshake
}

// NewProvider checks the inventory of r (a key file that exists and parses,
// or an agent; a known_hosts file) without connecting anywhere.
func NewProvider(r *topology.Rack, opts ...Option) (*Provider, error) {
	p := &Provider{rack: r, log: logr.Discard(), dialTimeout: DefaultDialTimeout, clients: map[string]*gossh.Client{}, dialing: map[string]*sync.Mutex{},
		sshConfigPath: DefaultUserConfig(), accesses: map[string]access{}}
	for _, o := range opts {
		o(p)
	}
	var uc *userConfig
	if p.sshConfigPath != "" {
		var err error
		if uc, err = loadUserConfig(p.sshConfigPath); err != nil {
			return nil, fmt.Errorf("ssh client configuration: %w", err)
		}
	}
	for _, n := range r.Spec.Nodes {
		a, err := p.access(&n, uc)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n.Name, err)
		}
		if _, err := a.authMethods(); err != nil {
			return nil, fmt.Errorf("node %s: %w", n.Name, err)
		}
		if len(a.from) > 0 {
			p.log.V(1).Info("settings from the ssh client configuration", "node", n.Name, "file", p.sshConfigPath, "keywords", a.from)
		}
		p.accesses[n.Name] = a
	}
	return p, nil
}

// WithSSHConfig reads the OpenSSH client configuration at path instead of
// ~/.ssh/config ("": none).
func WithSSHConfig(path string) Option { return func(p *Provider) { p.sshConfigPath = path } }

// access is a machine's SSH settings: the node's own over the rack's, then
// the user's ssh client configuration for what they leave out.
type access struct {
	node                  string
	addr                  string
	user, identity, hosts string
	port                  int
	agent, sudo           bool
	// host is where to dial when the ssh configuration's HostName says (""
	// : addr); jump, the ProxyJump host to dial through; from, the keywords
	// the configuration gave.
	host string
	jump *access
	from []string
}

// dialHost is the host the machine's sshd is dialled at.
func (a access) dialHost() string {
	if a.host != "" {
		return a.host
	}
	return a.addr
}

func (p *Provider) access(n *topology.Node, uc *userConfig) (access, error) {
	a := access{node: n.Name, addr: n.Address, user: "root", port: 22}
	home, _ := os.UserHomeDir()
	a.hosts = filepath.Join(home, ".ssh", "known_hosts")
	var set topologySet
	for _, s := range []*topology.SSH{p.rack.Spec.SSH, n.SSH} {
		if s == nil {
			continue
		}
		if s.User != "" {
			a.user, set.user = s.User, true
		}
		if s.Port != 0 {
			a.port, set.port = s.Port, true
		}
		if s.IdentityFile != "" {
			a.identity, set.identity = expandHome(s.IdentityFile), true
		}
		if s.KnownHosts != "" {
			a.hosts = expandHome(s.KnownHosts)
		}
		a.agent = a.agent || s.Agent
		a.sudo = a.sudo || s.Sudo
	}
	if err := uc.fill(&a, n.Name, set); err != nil {
		return access{}, err
	}
	return a, nil
}

func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}

func (a access) authMethods() ([]gossh.AuthMethod, error) {
	var methods []gossh.AuthMethod
	if a.identity != "" {
		data, err := os.ReadFile(a.identity)
		if err != nil {
			return nil, fmt.Errorf("identity file: %w", err)
		}
		signer, err := gossh.ParsePrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("identity file %s: %w (a passphrase-protected key is used through the agent: ssh.agent: true)", a.identity, err)
		}
		methods = append(methods, gossh.PublicKeys(signer))
	}
	if a.agent {
		sock := os.Getenv("SSH_AUTH_SOCK")
		if sock == "" {
			return nil, errors.New("ssh.agent is set but SSH_AUTH_SOCK is not")
		}
		methods = append(methods, gossh.PublicKeysCallback(func() ([]gossh.Signer, error) {
			c, err := net.Dial("unix", sock)
			if err != nil {
				return nil, fmt.Errorf("ssh agent %s: %w", sock, err)
			}
			return agent.NewClient(c).Signers()
		}))
	}
	if len(methods) == 0 {
		return nil, errors.New("no SSH credentials: set ssh.identityFile or ssh.agent in the topology, or IdentityFile for this Host in ~/.ssh/config")
	}
	return methods, nil
}

// HostKeyError is a host whose key known_hosts does not vouch for.
type HostKeyError struct {
	Node, Addr, KnownHosts string
	// Offered is the fingerprint the host showed; Known, those known_hosts
	// lists for it (none: the host is unknown).
	Offered string
	Known   []string
}

func (e *HostKeyError) Error() string {
	if len(e.Known) == 0 {
		return fmt.Sprintf("host %s (%s) is not in %s; it offers key %s: check that fingerprint on the machine (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and run again with --accept-new-host-keys to record it",
			e.Node, e.Addr, e.KnownHosts, e.Offered)
	}
	return fmt.Sprintf("host key of %s (%s) does not match %s: it offers %s, known_hosts has %s; refusing it (if the machine was reinstalled, remove its line with ssh-keygen -f %s -R '%s')",
		e.Node, e.Addr, e.KnownHosts, e.Offered, strings.Join(e.Known, ", "), e.KnownHosts, knownhosts.Normalize(e.Addr))
}

// hostKeyCallback checks a host against known_hosts, recording an unknown one
// when the user allowed it.
func (p *Provider) hostKeyCallback(a access) (gossh.HostKeyCallback, error) {
	if _, err := os.Stat(a.hosts); errors.Is(err, os.ErrNotExist) && p.acceptNew {
		if err := os.MkdirAll(filepath.Dir(a.hosts), 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(a.hosts, nil, 0o600); err != nil {
			return nil, err
		}
	}
	check, err := knownhosts.New(a.hosts)
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	return func(hostname string, remote net.Addr, key gossh.PublicKey) error {
		p.khMu.Lock()
		defer p.khMu.Unlock()
		err := check(hostname, remote, key)
		var ke *knownhosts.KeyError
		if !errors.As(err, &ke) {
			return err
		}
		he := &HostKeyError{Node: a.node, Addr: hostname, KnownHosts: a.hosts, Offered: gossh.FingerprintSHA256(key)}
		for _, k := range ke.Want {
			he.Known = append(he.Known, gossh.FingerprintSHA256(k.Key))
		}
		if len(ke.Want) > 0 || !p.acceptNew {
			return he
		}
		line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key)
		f, err := os.OpenFile(a.hosts, os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := fmt.Fprintln(f, line); err != nil {
			return err
		}
		p.log.Info("recorded a new host key", "node", a.node, "host", hostname, "fingerprint", he.Offered, "file", a.hosts)
		return nil
	}, nil
}

// UnreachableError is a machine that did not answer SSH.
type UnreachableError struct {
	Node, Addr string
	Err        error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("node %s (%s) is unreachable over SSH: %v", e.Node, e.Addr, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// client returns the machine's connection, dialling it the first time.
func (p *Provider) client(ctx context.Context, a access) (*gossh.Client, error) {
	// One dial at a time per machine; machines dial in parallel.
	p.mu.Lock()
	lock, ok := p.dialing[a.node]
	if !ok {
		lock = &sync.Mutex{}
		p.dialing[a.node] = lock
	}
	p.mu.Unlock()
	lock.Lock()
	defer lock.Unlock()
	p.mu.Lock()
	c, ok := p.clients[a.node]
	p.mu.Unlock()
	if ok {
		return c, nil
	}
	auth, err := a.authMethods()
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", a.node, err)
	}
	check, err := p.hostKeyCallback(a)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", a.node, err)
	}
	addr := net.JoinHostPort(a.dialHost(), strconv.Itoa(a.port))
	dctx, cancel := context.WithTimeout(ctx, p.dialTimeout)
	defer cancel()
	conn, err := p.dialTCP(dctx, a)
	if err != nil {
		return nil, &UnreachableError{Node: a.node, Addr: addr, Err: err}
	}
	// The handshake is bounded too: a host that accepts TCP but never speaks
	// SSH must not hang the run.
	_ = conn.SetDeadline(time.Now().Add(p.dialTimeout))
	cfg := &gossh.ClientConfig{User: a.user, Auth: auth, HostKeyCallback: check, Timeout: p.dialTimeout,
		HostKeyAlgorithms: p.knownAlgorithms(a)}
	cc, chans, reqs, err := gossh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		var he *HostKeyError
		if errors.As(err, &he) {
			return nil, he
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, fmt.Errorf("node %s (%s): user %s was refused: %w", a.node, addr, a.user, err)
		}
		return nil, &UnreachableError{Node: a.node, Addr: addr, Err: err}
	}
	_ = conn.SetDeadline(time.Time{})
	c = gossh.NewClient(cc, chans, reqs)
	p.mu.Lock()
	p.clients[a.node] = c
	p.mu.Unlock()
	return c, nil
}

// knownAlgorithms asks a host for the kinds of key known_hosts holds for it,
// so that a host with several keys shows the one that can be checked.
func (p *Provider) knownAlgorithms(a access) []string {
	data, err := os.ReadFile(a.hosts)
	if err != nil {
		return nil
	}
	var algos []string
	host := knownhosts.Normalize(net.JoinHostPort(a.dialHost(), strconv.Itoa(a.port)))
	for _, line := range strings.Split(string(data), "\n") {
		_, hosts, key, _, _, err := gossh.ParseKnownHosts([]byte(line))
		if err != nil || !slices.ContainsFunc(hosts, func(h string) bool { return h == host || h == a.dialHost() || h == a.node }) {
			continue
		}
		if !slices.Contains(algos, key.Type()) {
			algos = append(algos, key.Type())
		}
	}
	return algos
}

// drop forgets a machine's connection after it broke.
func (p *Provider) drop(node string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[node]; ok {
		_ = c.Close()
		delete(p.clients, node)
	}
}

// Close closes every connection.
func (p *Provider) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for name, c := range p.clients {
		errs = append(errs, c.Close())
		delete(p.clients, name)
	}
	return errors.Join(errs...)
}

// Nodes are the topology's machines; each connects on its first command.
func (p *Provider) Nodes(ctx context.Context) ([]cluster.Node, error) {
	var out []cluster.Node
	for i := range p.rack.Spec.Nodes {
		n := &p.rack.Spec.Nodes[i]
		out = append(out, &node{p: p, a: p.accesses[n.Name], roles: n.Roles, addr: n.Addr(), power: n.Power})
	}
	return out, nil
}

// Check connects to every machine and, where the inventory says sudo, checks
// that sudo works without a password: each failure names its host, all of
// them at once, before anything runs.
func (p *Provider) Check(ctx context.Context) error {
	nodes, _ := p.Nodes(ctx)
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.(*node).check(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Kubeconfig reads the admin kubeconfig from the first server that gives it.
func (p *Provider) Kubeconfig(ctx context.Context) ([]byte, error) {
	if p.kubeconfig != "" && !p.kubeconfigFallback {
		return localKubeconfig(p.kubeconfig)
	}
	data, err := p.serverKubeconfig(ctx)
	if err != nil && p.kubeconfig != "" {
		local, lerr := localKubeconfig(p.kubeconfig)
		if lerr != nil {
			return nil, fmt.Errorf("%w; and %w", err, lerr)
		}
		p.log.Info("no server gives the admin kubeconfig: using the kubeconfig of $KUBECONFIG", "files", p.kubeconfig, "why", err.Error())
		return local, nil
	}
	return data, err
}

// localKubeconfig merges the kubeconfig files of list, as kubectl does, and
// keeps its current context only.
func localKubeconfig(list string) ([]byte, error) {
	rules := &clientcmd.ClientConfigLoadingRules{Precedence: filepath.SplitList(list)}
	cfg, err := rules.Load()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", list, err)
	}
	if cfg.CurrentContext == "" || cfg.Contexts[cfg.CurrentContext] == nil {
		return nil, fmt.Errorf("kubeconfig %s: no current context", list)
	}
	min := *cfg
	if err := clientcmdapi.MinifyConfig(&min); err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", list, err)
	}
	if err := clientcmdapi.FlattenConfig(&min); err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", list, err)
	}
	return clientcmd.Write(min)
}

// serverKubeconfig reads the admin kubeconfig from the first server that has
// it.
func (p *Provider) serverKubeconfig(ctx context.Context) ([]byte, error) {
	path := p.rack.Spec.Kubernetes.Distribution.AdminKubeconfig()
	nodes, _ := p.Nodes(ctx)
	var errs []error
	for _, n := range nodes {
		if !slices.Contains(n.Roles(), topology.RoleServer) {
			continue
		}
		var out strings.Builder
		var stderr strings.Builder
		if err := n.Command(ctx, "cat", path).SetStdout(&out).SetStderr(&stderr).Run(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w %s", n.Name(), err, strings.TrimSpace(stderr.String())))
			continue
		}
		return []byte(out.String()), nil
	}
	return nil, fmt.Errorf("kubeconfig %s from no server: %w", path, errors.Join(errs...))
}

// Up adopts the rack: it is there already; Up checks that every machine
// answers.
func (p *Provider) Up(ctx context.Context, _ *topology.Rack) error { return p.Check(ctx) }

// Down does nothing to a real rack: rackdrill never removes the user's machines.
func (p *Provider) Down(context.Context) error { return p.Close() }

var _ cluster.Provider = (*Provider)(nil)

// node is one machine of the rack.
type node struct {
	p     *Provider
	a     access
	roles []topology.Role
	addr  netip.Addr
	power *topology.Power
}

var _ cluster.Node = (*node)(nil)

func (n *node) Name() string           { return n.a.node }
func (n *node) Roles() []topology.Role { return n.roles }
func (n *node) Addr() netip.Addr       { return n.addr }
func (n *node) String() string         { return n.a.node }

// Running: the machine's sshd accepts a connection now (a new one: the
// connection kept for commands may outlive a machine that just went away).
func (n *node) Running(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, RunningTimeout)
	defer cancel()
	c, err := n.p.dialTCP(ctx, n.a)
	if err != nil {
		return false, nil
	}
	_ = c.Close()
	return true, nil
}

// RunningTimeout bounds Running's connection attempt.
const RunningTimeout = 2 * time.Second

// StartTimeout is how long Start waits for a machine it powered on (or asked
// a person to) to answer SSH; the faults' revert limits count on it.
var StartTimeout = cluster.PowerOnLimit

// Stop and Kill need a power switch the harness does not hold: on a real rack
// machines power off by their own shutdown (the UPS drill's upsmon).
func (n *node) Stop(context.Context) error {
	return fmt.Errorf("stop %s over SSH: %w", n.a.node, cluster.ErrUnsupported)
}

func (n *node) Kill(context.Context) error {
	return fmt.Errorf("kill %s over SSH: %w", n.a.node, cluster.ErrUnsupported)
}

// Start powers the machine on the way its spec.nodes[].power says (a command
// run here, such as wakeonlan or ipmitool, or a person asked to), then waits
// until it answers SSH; a no-op on a machine that answers. The command is run
// again every PowerRetry while the machine does not answer: a machine still
// halting ignores it (a Wake-on-LAN packet, `docker start` of a container
// that has not exited yet), and a magic packet may be lost.
func (n *node) Start(ctx context.Context) error {
	if up, _ := n.Running(ctx); up {
		return nil
	}
	if n.power == nil {
		return fmt.Errorf("start %s over SSH: %w (spec.nodes[].power is not documented: power it on by hand)", n.a.node, cluster.ErrUnsupported)
	}
	powerOn := func() error {
		if n.power.Command == "" {
			n.p.log.Info("POWER THIS MACHINE ON BY HAND: rackdrill waits until it answers SSH", "node", n.a.node, "address", n.a.addr, "waiting", StartTimeout)
			return nil
		}
		n.p.log.Info("powering the machine on", "node", n.a.node)
		var out strings.Builder
		cmd := osexec.CommandContext(ctx, "sh", "-c", n.power.Command)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("power on %s (spec.nodes[].power.command): %w %s", n.a.node, err, strings.TrimSpace(out.String()))
		}
		return nil
	}
	if err := powerOn(); err != nil {
		return err
	}
	n.p.drop(n.a.node)
	again := time.Now().Add(PowerRetry)
	err := poll.Until(ctx, time.Second, StartTimeout, func() (bool, error) {
		if up, _ := n.Running(ctx); up {
			return true, nil
		}
		if n.power.Command != "" && time.Now().After(again) {
			if err := powerOn(); err != nil {
				return false, err
			}
			again = time.Now().Add(PowerRetry)
		}
		return false, nil
	})
	switch {
	case errors.Is(err, poll.ErrLimit):
		return fmt.Errorf("start %s: it does not answer SSH on %s %s after it was powered on", n.a.node, n.a.addr, StartTimeout)
	case ctx.Err() != nil:
		return fmt.Errorf("start %s: %w", n.a.node, ctx.Err())
	}
	return err
}

// PowerRetry is how long Start waits for a machine to answer before it runs
// its power-on command again.
var PowerRetry = 20 * time.Second

func (n *node) check(ctx context.Context) error {
	if _, err := n.p.client(ctx, n.a); err != nil {
		return err
	}
	if !n.a.sudo {
		return nil
	}
	var stderr strings.Builder
	if err := n.Command(ctx, "true").SetStderr(&stderr).Run(); err != nil {
		return fmt.Errorf("node %s: sudo as %s without a password fails (the inventory says sudo: true): %s", n.a.node, n.a.user, strings.TrimSpace(stderr.String()))
	}
	return nil
}
