package containers

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	mobynet "github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tcnet "github.com/testcontainers/testcontainers-go/network"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	"k8s.io/client-go/kubernetes"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/probe"
	agentpkg "rackdrill.dev/rackdrill/harness/probe/agent"
	"rackdrill.dev/rackdrill/harness/topology"
)

//go:embed templates
var templates embed.FS

var tmpl = template.Must(template.New("").Funcs(template.FuncMap{
	"add": func(a, b int) int { return a + b },
	"indent": func(n int, s string) string {
		pad := strings.Repeat(" ", n)
		return pad + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+pad)
	},
}).ParseFS(templates, "templates/*.tmpl"))

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
	start := time.Now()
	u := &upRun{p: p, r: r, nodes: map[string]*node{}}
	defer func() {
		if err != nil && !p.keepOnFailure {
			p.step("removing the half-built rack (--keep-on-failure keeps it)")
			if derr := p.Down(context.WithoutCancel(ctx)); derr != nil {
				err = errors.Join(err, fmt.Errorf("clean up: %w", derr))
			}
		}
	}()
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"check images and Docker", u.preflight},
		{"create networks", u.networks},
		{"start the Internet vantage point", u.vantage},
		{"start machines", u.machines},
		{"wait for systemd on every machine", u.boot},
		{"SSH access: the rack's key, known_hosts, checked", u.sshAccess},
		{"start the API load balancers (keepalived + HAProxy)", u.loadBalancers},
		{"start the NAS (nfs-ganesha)", u.nas},
		{"start containerd and import the preloaded images", u.runtimes},
		{"kubeadm init on the first server", u.kubeadmInit},
		{"join the other servers (stacked etcd)", u.joinServers},
		{"join the workers", u.joinWorkers},
		{"configure pod networking (ptp, routes)", u.podNetwork},
		{"wait for every node Ready", u.nodesReady},
		{"run CoreDNS on the workers, one per node", u.spreadDNS},
		{"install MetalLB (layer 2)", u.metallb},
		{"install the ingress controller", u.ingress},
		{"deploy the probe workloads and the demo app", u.workloads},
		{"start the tunnel to the VPS (ssh -R)", u.tunnel},
		{"start the UPS (NUT, dummy-ups, upsmon with the rack's shutdown)", u.ups},
	}
	for i, s := range steps {
		t0 := time.Now()
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
			if out, err := exec.Output(n.Command(ctx, "cat", "/etc/kubernetes/admin.conf")); err == nil {
				return out, nil
			}
		}
	}
	return nil, fmt.Errorf("kubeconfig of rack %s: no server has /etc/kubernetes/admin.conf (is the rack up?)", p.rack)
}

var _ cluster.KubeconfigSource = (*Provider)(nil)

// upRun is the state of one Up.
type upRun struct {
	p          *Provider
	r          *topology.Rack
	image      string
	nets       map[string]string // network name in the topology -> Docker network name
	mu         sync.Mutex
	nodes      map[string]*node
	token      string
	cert       string
	sshKey     []byte
	knownHosts string
	podCIDRs   map[string]string
}

func (u *upRun) preflight(ctx context.Context) error {
	dc, err := u.p.client(ctx)
	if err != nil {
		return err
	}
	if u.image, err = lab.ContentTag("node"); err != nil {
		return err
	}
	if _, err := dc.ImageInspect(ctx, u.image); err != nil {
		return fmt.Errorf("the node image %s is not built: run `make images` first", u.image)
	}
	existing, err := u.p.Nodes(ctx)
	if err != nil {
		return err
	}
	if len(existing) > 0 {
		return fmt.Errorf("rack %s already has %d machines: `rackdrill down` first (or `rackdrill status`)", u.r.Metadata.Name, len(existing))
	}
	if u.r.Spec.Kubernetes.Distribution != topology.DistributionKubeadm {
		return fmt.Errorf("spec.kubernetes.distribution: the containers provider builds kubeadm racks, not %s", u.r.Spec.Kubernetes.Distribution)
	}
	if u.r.Spec.Kubernetes.Version != lab.KubernetesVersion {
		return fmt.Errorf("spec.kubernetes.version: the lab's images are %s, not %s", lab.KubernetesVersion, u.r.Spec.Kubernetes.Version)
	}
	if u.p.artifacts == "" {
		u.p.artifacts = "_artifacts"
	}
	if err := os.MkdirAll(u.p.artifacts, 0o755); err != nil {
		return err
	}
	buf := make([]byte, 32)
	_, _ = rand.Read(buf)
	u.cert = hex.EncodeToString(buf)
	u.token = hex.EncodeToString(buf[:3]) + "." + hex.EncodeToString(buf[3:11])
	return nil
}

// networks creates the rack's networks: Docker allocates dynamic addresses
// only from the top quarter of each subnet, away from the nodes, the VIP and
// the MetalLB pool the topology places below it.
func (u *upRun) networks(ctx context.Context) error {
	u.nets = map[string]string{}
	for _, n := range u.r.Spec.Networks {
		pre := n.Prefix()
		gw := pre.Addr().Next()
		dyn := netip.PrefixFrom(quarter(pre), pre.Bits()+2)
		nw, err := tcnet.New(ctx,
			tcnet.WithLabels(map[string]string{LabelRack: u.r.Metadata.Name, LabelNetwork: n.Name}),
			tcnet.WithIPAM(&mobynet.IPAM{Driver: "default", Config: []mobynet.IPAMConfig{{Subnet: pre, Gateway: gw, IPRange: dyn}}}))
		if err != nil {
			return fmt.Errorf("network %s (%s): %w", n.Name, n.CIDR, err)
		}
		u.nets[n.Name] = nw.Name
	}
	return nil
}

// vantage starts the Internet vantage point: a small container on the Internet
// network only, whose network namespace the internet probe dials from.
func (u *upRun) vantage(ctx context.Context) error {
	inet := u.r.InternetNetwork()
	if inet == nil {
		return nil
	}
	agent, err := lab.ContentTag("agent")
	if err != nil {
		return err
	}
	netName := u.nets[inet.Name]
	_, err = testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image: agent, Name: u.r.Metadata.Name + "-internet-vantage", Cmd: []string{"--demo"},
			Labels:   map[string]string{LabelRack: u.r.Metadata.Name, LabelVantage: "internet"},
			Networks: []string{netName},
		},
		Started: true,
	})
	return err
}

// quarter is the first address of the top quarter of p.
func quarter(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	size := uint32(1) << (32 - p.Bits())
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += size / 4 * 3
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// machines starts every node container at once, with the flags that replace
// --privileged on this kind of machine (lab-notes).
func (u *upRun) machines(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(u.r.Spec.Nodes))
	for i := range u.r.Spec.Nodes {
		tn := u.r.Spec.Nodes[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = u.machine(ctx, tn)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (u *upRun) machine(ctx context.Context, tn topology.Node) error {
	var roles []string
	for _, r := range tn.Roles {
		roles = append(roles, string(r))
	}
	netName := u.nets[tn.Network]
	addr := tn.Addr()
	networks := []string{netName}
	if t := u.r.Spec.Tunnel; t != nil && t.Server.Node == tn.Name && tn.Network != u.r.AdminNetwork().Name {
		// The VPS has a leg on the LAN too: a LAN client reaches a VPS through
		// its router's NAT in real life, and Docker isolates bridges. Nothing on
		// the Internet network routes through it: its default route stays there.
		networks = append(networks, u.nets[u.r.AdminNetwork().Name])
	}
	labels := map[string]string{LabelRack: u.r.Metadata.Name, LabelNode: tn.Name,
		LabelRoles: strings.Join(roles, ","), LabelAddress: tn.Address}
	req := testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:          u.image,
			Name:           u.r.Metadata.Name + "-" + tn.Name,
			Labels:         labels,
			Networks:       networks[:1],
			NetworkAliases: map[string][]string{netName: {tn.Name}},
			Tmpfs:          map[string]string{"/tmp": "", "/run": "", "/run/lock": ""},
			ConfigModifier: func(c *container.Config) {
				c.Hostname = tn.Name
				c.Tty = true
			},
			HostConfigModifier: func(h *container.HostConfig) {
				// --privileged fails here (no CAP_SYS_RESOURCE in the VM's
				// bounding set); this is its equivalent that works.
				h.CapAdd = []string{"ALL"}
				h.CapDrop = []string{"SYS_RESOURCE"}
				h.SecurityOpt = []string{"seccomp=unconfined", "apparmor=unconfined"}
				// The CLI's --security-opt systempaths=unconfined: nothing masked
				// or read-only under /proc and /sys (empty, not nil, overrides).
				h.MaskedPaths = []string{}
				h.ReadonlyPaths = []string{}
				h.DeviceCgroupRules = []string{"a *:* rwm"}
				h.Devices = []container.DeviceMapping{{PathOnHost: "/dev/kmsg", PathInContainer: "/dev/kmsg", CgroupPermissions: "rwm"}}
				h.CgroupnsMode = container.CgroupnsModePrivate
				h.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyDisabled}
				// /var on a volume of its own: containerd's overlayfs cannot sit on
				// the container's own overlay. Named and labelled, so Down finds it.
				h.Mounts = append(h.Mounts, mount.Mount{Type: mount.TypeVolume, Source: u.r.Metadata.Name + "-" + tn.Name + "-var",
					Target: "/var", VolumeOptions: &mount.VolumeOptions{Labels: labels}})
				// The NAS's exports too: nfs-ganesha's VFS backend needs file
				// handles, which the container's overlay root does not give.
				if nfs := u.r.Spec.Storage; nfs != nil && nfs.NFS != nil && nfs.NFS.Node == tn.Name {
					for i, e := range nfs.NFS.Exports {
						h.Mounts = append(h.Mounts, mount.Mount{Type: mount.TypeVolume, Source: fmt.Sprintf("%s-%s-export%d", u.r.Metadata.Name, tn.Name, i),
							Target: e, VolumeOptions: &mount.VolumeOptions{Labels: labels}})
					}
				}
			},
			EndpointSettingsModifier: func(m map[string]*mobynet.EndpointSettings) {
				if es, ok := m[netName]; ok {
					es.IPAMConfig = &mobynet.EndpointIPAMConfig{IPv4Address: addr}
				}
			},
		},
		Started: true,
	}
	c, err := testcontainers.GenericContainer(ctx, req)
	if err != nil {
		return &UpError{Step: "start machine", Node: tn.Name, Err: err}
	}
	// Further networks are connected here, not by testcontainers-go, which
	// ignores a failure to find them.
	for _, extra := range networks[1:] {
		dc, err := u.p.client(ctx)
		if err != nil {
			return err
		}
		if _, err := dc.NetworkConnect(ctx, extra, client.NetworkConnectOptions{Container: c.GetContainerID()}); err != nil {
			return &UpError{Step: "connect machine to network " + extra, Node: tn.Name, Err: err}
		}
	}
	n := &node{p: u.p, id: c.GetContainerID(), name: tn.Name, roles: tn.Roles, addr: addr}
	u.mu.Lock()
	u.nodes[tn.Name] = n
	u.mu.Unlock()
	return nil
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

func (u *upRun) boot(ctx context.Context) error {
	return u.each(u.all(), func(n *node) error {
		// systemd answers only once D-Bus is up; until then it says so, and
		// `--wait` gives up at once. "degraded" is fine: a unit of a role the
		// machine does not hold may fail.
		var state string
		err := Poll(ctx, 2*time.Minute, func() error {
			out, _ := exec.Output(n.Command(ctx, "systemctl", "is-system-running", "--wait"))
			state = strings.TrimSpace(string(out))
			if state == "running" || state == "degraded" {
				return nil
			}
			return fmt.Errorf("systemd is %q", state)
		})
		if err != nil {
			return u.fail(ctx, "boot", n, err)
		}
		return nil
	})
}

// write puts content at path on n (streamed: files copied into tmpfs paths are
// not visible, lab-notes).
func write(ctx context.Context, n *node, path, content string) error {
	return exec.Run(n.Command(ctx, "sh", "-c", fmt.Sprintf("mkdir -p %q && cat > %q", filepath.Dir(path), path)).SetStdin(strings.NewReader(content)))
}

func render(name string, data any) (string, error) {
	var b bytes.Buffer
	if err := tmpl.ExecuteTemplate(&b, name, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

func (u *upRun) loadBalancers(ctx context.Context) error {
	cp := u.r.Spec.ControlPlane
	admin := u.r.AdminNetwork().Prefix()
	type backend struct{ Name, Address string }
	var backends []backend
	if cp.HAProxy != nil {
		for _, name := range cp.HAProxy.Backends {
			backends = append(backends, backend{name, u.r.Node(name).Address})
		}
	}
	lbs := u.withRole(topology.RoleLoadBalancer)
	err := u.each(lbs, func(n *node) error {
		var units []string
		if cp.HAProxy != nil && slices.Contains(cp.HAProxy.Nodes, n.name) {
			cfg, err := render("haproxy.cfg.tmpl", map[string]any{"Node": n.name, "Rack": u.r.Metadata.Name,
				"Port": cp.Endpoint.Port, "StatsPort": cp.HAProxy.StatsPort, "Backends": backends})
			if err != nil {
				return err
			}
			if err := write(ctx, n, "/etc/haproxy/haproxy.cfg", cfg); err != nil {
				return u.fail(ctx, "write haproxy.cfg", n, err)
			}
			units = append(units, "haproxy")
		}
		if ka := cp.Keepalived; ka != nil {
			for _, m := range ka.Members {
				if m.Node != n.name {
					continue
				}
				sum := sha(u.r.Metadata.Name)
				cfg, err := render("keepalived.conf.tmpl", map[string]any{"Node": n.name, "Rack": u.r.Metadata.Name,
					"Master": ka.Master() == n.name, "Interface": ka.Interface, "RouterID": ka.VirtualRouterID,
					"Priority": m.Priority, "Password": sum[:8], "VIP": cp.Endpoint.Host, "Bits": admin.Bits()})
				if err != nil {
					return err
				}
				if err := write(ctx, n, "/etc/keepalived/keepalived.conf", cfg); err != nil {
					return u.fail(ctx, "write keepalived.conf", n, err)
				}
				units = append(units, "keepalived")
			}
		}
		if len(units) == 0 {
			return nil
		}
		if err := exec.Run(n.Command(ctx, "systemctl", append([]string{"enable", "--now"}, units...)...)); err != nil {
			return u.fail(ctx, "start "+strings.Join(units, ", "), n, err)
		}
		return nil
	})
	if err != nil || cp.Keepalived == nil {
		return err
	}
	master := u.nodes[cp.Keepalived.Master()]
	return Poll(ctx, 30*time.Second, func() error {
		out, err := exec.Output(master.Command(ctx, "ip", "-4", "-o", "addr", "show"))
		if err == nil && strings.Contains(string(out), " "+cp.Endpoint.Host+"/") {
			return nil
		}
		return fmt.Errorf("the VIP %s is not on the MASTER %s", cp.Endpoint.Host, master.name)
	})
}

// nas starts nfs-ganesha on the NAS and waits until NFS answers through
// rpcbind, as clients find it.
func (u *upRun) nas(ctx context.Context) error {
	st := u.r.Spec.Storage
	if st == nil || st.NFS == nil {
		return nil
	}
	n := u.nodes[st.NFS.Node]
	cfg, err := render("ganesha.conf.tmpl", map[string]any{"Node": n.name, "Exports": st.NFS.Exports})
	if err != nil {
		return err
	}
	if err := write(ctx, n, "/etc/ganesha/ganesha.conf", cfg); err != nil {
		return u.fail(ctx, "write ganesha.conf", n, err)
	}
	if err := exec.Run(n.Command(ctx, "systemctl", "enable", "--now", "rpcbind", "nfs-ganesha")); err != nil {
		return u.fail(ctx, "start nfs-ganesha", n, err)
	}
	if err := Poll(ctx, time.Minute, func() error {
		out, err := exec.Output(n.Command(ctx, "rpcinfo", "-p", "127.0.0.1"))
		if err != nil {
			return err
		}
		if !strings.Contains(string(out), "nfs") || !strings.Contains(string(out), "mountd") {
			return fmt.Errorf("nfs and mountd not registered with rpcbind yet:\n%s", out)
		}
		return nil
	}); err != nil {
		return u.fail(ctx, "NFS registered with rpcbind", n, err)
	}
	return nil
}

func (u *upRun) kubeNodes() []*node {
	return append(u.withRole(topology.RoleServer), u.withRole(topology.RoleWorker)...)
}

func (u *upRun) runtimes(ctx context.Context) error {
	// Pods' upstream DNS: the LAN's gateway, this machine's own bridge. The lab
	// is offline and needs no outside name; asking there fails fast.
	resolv := fmt.Sprintf("nameserver %s\n", u.r.AdminNetwork().Prefix().Addr().Next())
	return u.each(u.kubeNodes(), func(n *node) error {
		if err := write(ctx, n, "/etc/rackdrill/resolv.conf", resolv); err != nil {
			return u.fail(ctx, "write the pods' resolv.conf", n, err)
		}
		if err := exec.Run(n.Command(ctx, "systemctl", "enable", "--now", "containerd", "rackdrill-preload", "kubelet")); err != nil {
			return u.fail(ctx, "start containerd", n, err)
		}
		return nil
	})
}

func (u *upRun) kubeadmConfig(n *node, init, controlPlane bool) (string, error) {
	cp := u.r.Spec.ControlPlane
	tn := u.r.Node(n.name)
	sans := append([]string{cp.Endpoint.Host}, cp.TLSSANs...)
	var labels []string
	for k, v := range tn.Labels {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	return render("kubeadm.yaml.tmpl", map[string]any{
		"Init": init, "ControlPlane": controlPlane, "Token": u.token, "CertificateKey": u.cert,
		"Address": tn.Address, "Port": 6443, "Node": n.name, "Rack": u.r.Metadata.Name,
		"Version": u.r.Spec.Kubernetes.Version, "Endpoint": fmt.Sprintf("%s:%d", cp.Endpoint.Host, cp.Endpoint.Port),
		"SANs": sans, "PodSubnet": u.r.Spec.Kubernetes.PodSubnet, "ServiceSubnet": u.r.Spec.Kubernetes.ServiceSubnet,
		"Labels": strings.Join(labels, ","), "Taints": tn.Taints,
	})
}

func (u *upRun) kubeadm(ctx context.Context, n *node, init, controlPlane bool) error {
	cfg, err := u.kubeadmConfig(n, init, controlPlane)
	if err != nil {
		return err
	}
	if err := write(ctx, n, "/etc/kubernetes/rackdrill-kubeadm.yaml", cfg); err != nil {
		return u.fail(ctx, "write kubeadm config", n, err)
	}
	args := []string{"join", "--config", "/etc/kubernetes/rackdrill-kubeadm.yaml"}
	step := "kubeadm join"
	if init {
		args = []string{"init", "--config", "/etc/kubernetes/rackdrill-kubeadm.yaml", "--upload-certs"}
		step = "kubeadm init"
	}
	if err := exec.Run(n.Command(ctx, "kubeadm", args...)); err != nil {
		return u.fail(ctx, step, n, err)
	}
	return nil
}

func (u *upRun) kubeadmInit(ctx context.Context) error {
	first := u.withRole(topology.RoleServer)[0]
	if err := u.kubeadm(ctx, first, true, true); err != nil {
		return err
	}
	kc, err := exec.Output(first.Command(ctx, "cat", "/etc/kubernetes/admin.conf"))
	if err != nil {
		return u.fail(ctx, "read admin.conf", first, err)
	}
	return os.WriteFile(u.p.kubeconfigPath(), kc, 0o600)
}

// joinServers joins the other servers one at a time, each after etcd is
// healthy again: a member added but never started takes quorum with it.
func (u *upRun) joinServers(ctx context.Context) error {
	servers := u.withRole(topology.RoleServer)
	first := servers[0]
	for _, n := range servers[1:] {
		if err := u.kubeadm(ctx, n, false, true); err != nil {
			return err
		}
		if err := Poll(ctx, time.Minute, func() error {
			_, err := u.kubectl(ctx, "", "get", "--raw", "/readyz/etcd")
			return err
		}); err != nil {
			return u.fail(ctx, "etcd healthy after joining "+n.name, first, err)
		}
	}
	return nil
}

func (u *upRun) joinWorkers(ctx context.Context) error {
	return u.each(u.withRole(topology.RoleWorker), func(n *node) error { return u.kubeadm(ctx, n, false, false) })
}

// podNetwork gives every Kubernetes node Debian's ptp plugin with host-local
// addresses from its podCIDR, and routes to every other node's podCIDR, kept in
// a file a unit replays at boot (a restarted container has a new network
// namespace).
func (u *upRun) podNetwork(ctx context.Context) error {
	first := u.withRole(topology.RoleServer)[0]
	u.podCIDRs = map[string]string{}
	err := Poll(ctx, time.Minute, func() error {
		out, err := u.kubectl(ctx, "", "get", "nodes",
			"-o", `jsonpath={range .items[*]}{.metadata.name}={.spec.podCIDR}{"\n"}{end}`)
		if err != nil {
			return err
		}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			name, cidr, _ := strings.Cut(l, "=")
			if cidr == "" {
				return fmt.Errorf("node %s has no podCIDR yet", name)
			}
			u.podCIDRs[name] = cidr
		}
		if len(u.podCIDRs) < len(u.kubeNodes()) {
			return fmt.Errorf("%d of %d nodes registered", len(u.podCIDRs), len(u.kubeNodes()))
		}
		return nil
	})
	if err != nil {
		return u.fail(ctx, "read podCIDRs", first, err)
	}
	return u.each(u.kubeNodes(), func(n *node) error {
		conf := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "rackdrill",
  "plugins": [
    {"type": "ptp", "mtu": 1500, "ipMasq": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, u.podCIDRs[n.name])
		var routes []string
		for _, other := range u.kubeNodes() {
			if other.name != n.name {
				routes = append(routes, fmt.Sprintf("ip route replace %s via %s", u.podCIDRs[other.name], other.addr))
			}
		}
		// Pod traffic leaving for outside the pod network is masqueraded.
		routes = append(routes, fmt.Sprintf("iptables -t nat -C POSTROUTING -s %s ! -d %s -j MASQUERADE 2>/dev/null || iptables -t nat -A POSTROUTING -s %s ! -d %s -j MASQUERADE",
			u.podCIDRs[n.name], u.r.Spec.Kubernetes.PodSubnet, u.podCIDRs[n.name], u.r.Spec.Kubernetes.PodSubnet))
		script := "#!/bin/sh\n# Pod routes of this lab machine, replayed at every boot.\nset -e\n" + strings.Join(routes, "\n") + "\n"
		unit := `[Unit]
Description=Routes to the other nodes' pods
After=network.target
Before=kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/bin/rackdrill-routes

[Install]
WantedBy=multi-user.target
`
		for path, content := range map[string]string{"/etc/cni/net.d/10-rackdrill.conflist": conf,
			"/usr/local/bin/rackdrill-routes": script, "/etc/systemd/system/rackdrill-routes.service": unit} {
			if err := write(ctx, n, path, content); err != nil {
				return u.fail(ctx, "write "+path, n, err)
			}
		}
		if err := exec.Run(n.Command(ctx, "sh", "-c", "chmod +x /usr/local/bin/rackdrill-routes && systemctl daemon-reload && systemctl enable --now rackdrill-routes")); err != nil {
			return u.fail(ctx, "pod routes", n, err)
		}
		return nil
	})
}

func (u *upRun) nodesReady(ctx context.Context) error {
	first := u.withRole(topology.RoleServer)[0]
	want := len(u.kubeNodes())
	err := Poll(ctx, 3*time.Minute, func() error {
		out, err := u.kubectl(ctx, "", "get", "nodes",
			"-o", `jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
		if err != nil {
			return err
		}
		ready := strings.Count(string(out), "=True")
		if ready < want {
			return fmt.Errorf("%d of %d nodes Ready:\n%s", ready, want, out)
		}
		return nil
	})
	if err != nil {
		return u.fail(ctx, "nodes Ready", first, err)
	}
	return nil
}

// spreadDNS runs CoreDNS's replicas on the workers, one per node. Where they
// land is otherwise left to chance (the order in which nodes became Ready),
// and a replica on a server makes that server's loss an in-cluster DNS outage:
// half the queries go to the dead pod until the node grace (50 s) takes its
// endpoint out, and every call to a Service by name fails meanwhile. The
// drills found it; the lab keeps DNS with the apps it serves.
func (u *upRun) spreadDNS(ctx context.Context) error {
	if len(u.withRole(topology.RoleWorker)) < 2 {
		return nil
	}
	first := u.withRole(topology.RoleServer)[0]
	patch := `{"spec":{"template":{"spec":{"affinity":{` +
		`"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":` +
		`[{"key":"node-role.kubernetes.io/control-plane","operator":"DoesNotExist"}]}]}},` +
		`"podAntiAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":` +
		`[{"labelSelector":{"matchLabels":{"k8s-app":"kube-dns"}},"topologyKey":"kubernetes.io/hostname"}]}}}}}}`
	if _, err := u.kubectl(ctx, "", "-n", "kube-system", "patch", "deployment", "coredns", "--type", "strategic", "-p", patch); err != nil {
		return u.fail(ctx, "place CoreDNS on the workers", first, err)
	}
	if _, err := u.kubectl(ctx, "", "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout", "3m"); err != nil {
		return u.fail(ctx, "CoreDNS on the workers", first, err)
	}
	return nil
}

// kubectl runs kubectl on the first server with the admin kubeconfig; stdin
// (manifests) when given.
func (u *upRun) kubectl(ctx context.Context, stdin string, args ...string) ([]byte, error) {
	first := u.withRole(topology.RoleServer)[0]
	cmd := first.Command(ctx, "kubectl", append([]string{"--kubeconfig", "/etc/kubernetes/admin.conf"}, args...)...)
	if stdin != "" {
		cmd.SetStdin(strings.NewReader(stdin))
	}
	return exec.Output(cmd)
}

func (u *upRun) apply(ctx context.Context, manifests string) error {
	_, err := u.kubectl(ctx, manifests, "apply", "--server-side", "--force-conflicts", "-f", "-")
	return err
}

// MetalLBManifests are MetalLB's own manifest (metallb-native.yaml of the
// pinned module, from the Go module proxy) and the topology's layer-2 pool.
// The lab and the k3d provider apply the same.
func MetalLBManifests(ctx context.Context, r *topology.Rack) (native, pool string, err error) {
	m := r.Spec.MetalLB
	dir, err := lab.ModuleDir(ctx, "go.universe.tf/metallb@"+lab.MetalLBVersion)
	if err != nil {
		return "", "", fmt.Errorf("MetalLB's manifest: %w", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "config", "manifests", "metallb-native.yaml"))
	if err != nil {
		return "", "", err
	}
	pool, err = render("metallb-config.yaml.tmpl", map[string]any{"Rack": r.Metadata.Name, "Namespace": m.Namespace, "Pool": m.Pool})
	return string(data), pool, err
}

// metallb applies MetalLB (whose images the lab preloads), then the
// topology's pool once the controller's webhook answers.
func (u *upRun) metallb(ctx context.Context) error {
	if u.r.Spec.MetalLB == nil {
		return nil
	}
	native, cfg, err := MetalLBManifests(ctx, u.r)
	if err != nil {
		return err
	}
	if err := u.apply(ctx, native); err != nil {
		return err
	}
	// The pool is validated by the controller's webhook, which needs a moment.
	return Poll(ctx, 3*time.Minute, func() error { return u.apply(ctx, cfg) })
}

func (u *upRun) ingress(ctx context.Context) error {
	in := u.r.Spec.Ingress
	if in == nil {
		return nil
	}
	if in.Controller != "traefik" {
		return fmt.Errorf("spec.ingress.controller: the lab runs traefik (ingress-nginx cannot be built offline), not %s", in.Controller)
	}
	man, err := render("traefik.yaml.tmpl", map[string]any{"Rack": u.r.Metadata.Name, "Namespace": in.Namespace,
		"Service": in.Service, "IP": in.IP, "Image": "docker.io/library/traefik:" + lab.TraefikVersion})
	if err != nil {
		return err
	}
	if err := u.apply(ctx, man); err != nil {
		return err
	}
	return Poll(ctx, 3*time.Minute, func() error {
		out, err := u.kubectl(ctx, "", "-n", in.Namespace, "get", "service", in.Service, "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(out)) != in.IP {
			return fmt.Errorf("ingress Service %s/%s has address %q, want %s", in.Namespace, in.Service, out, in.IP)
		}
		return nil
	})
}

// workloads deploys what the probes need (the demo app behind its Ingress, the
// heal Deployment, the agents) and waits until the demo app answers through the
// ingress IP.
func (u *upRun) workloads(ctx context.Context) error {
	kc, err := os.ReadFile(u.p.kubeconfigPath())
	if err != nil {
		return err
	}
	cfg, err := probe.RESTConfig(kc, u.r.APIServerURL())
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	// The cluster knows the lab's images by the names the node image preloads.
	wc := probe.WorkloadConfig{Namespace: u.r.Spec.Probes.Namespace, Image: lab.Alias("agent"), IngressHost: u.r.Spec.Probes.Host, IngressClass: "traefik"}
	if st := u.r.Spec.Storage; st != nil && st.NFS != nil {
		// The lab's pods cannot mount NFS: the agents speak it from user space.
		wc.NFSServer, wc.NFSExport = u.r.Node(st.NFS.Node).Address, st.NFS.Exports[0]
	}
	if err := probe.Deploy(ctx, cs, wc); err != nil {
		return err
	}
	if u.r.Spec.Ingress == nil {
		return nil
	}
	lan := probe.NewHTTP("lan", "http://"+u.r.Spec.Ingress.IP+"/", probe.WithHost(u.r.Spec.Probes.Host), probe.WithMarker(agentpkg.DemoMarker))
	return u.waitProbe(ctx, lan, 3*time.Minute, "through the ingress IP")
}

// waitProbe waits until p answers, for at most limit.
func (u *upRun) waitProbe(ctx context.Context, p probe.Probe, limit time.Duration, where string) error {
	return Poll(ctx, limit, func() error {
		cctx, cancel := context.WithTimeout(ctx, u.r.Spec.Probes.Timeout.Duration)
		defer cancel()
		if r := p.Check(cctx); !r.OK {
			return fmt.Errorf("the demo app does not answer %s: %v", where, r.Err)
		}
		return nil
	})
}

// tunnel starts the tunnel client Deployment: ssh -R from the VPS's public
// ports to the target (the ingress IP), with the rack's key and the VPS's host
// key pinned; then waits until the demo app answers from the Internet side.
func (u *upRun) tunnel(ctx context.Context) error {
	t := u.r.Spec.Tunnel
	if t == nil {
		return nil
	}
	if t.Type != topology.TunnelSSH {
		return fmt.Errorf("spec.tunnel.type: the lab's tunnel is ssh (FRP cannot be built offline), not %s", t.Type)
	}
	vps := u.nodes[t.Server.Node]
	dc, err := u.p.client(ctx)
	if err != nil {
		return err
	}
	ins, err := dc.ContainerInspect(ctx, vps.id, client.ContainerInspectOptions{})
	if err != nil {
		return err
	}
	var lanAddr string
	for name, es := range ins.Container.NetworkSettings.Networks {
		if name == u.nets[u.r.AdminNetwork().Name] && es.IPAddress.IsValid() {
			lanAddr = es.IPAddress.String()
		}
	}
	if lanAddr == "" {
		return u.fail(ctx, "find the VPS's LAN address", vps, fmt.Errorf("not attached to the LAN"))
	}
	hk, err := exec.Output(vps.Command(ctx, "cat", "/etc/ssh/ssh_host_ed25519_key.pub"))
	if err != nil {
		return u.fail(ctx, "read the VPS host key", vps, err)
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey(hk)
	if err != nil {
		return err
	}
	var forwards []string
	for _, p := range t.Ports {
		forwards = append(forwards, fmt.Sprintf("0.0.0.0:%d:%s:%d", p.Public, t.Target, p.Target))
	}
	image := lab.Alias("tunnel-client")
	man, err := render("tunnel.yaml.tmpl", map[string]any{"Namespace": t.Client.Namespace, "Deployment": t.Client.Deployment,
		"Key": string(u.sshKey), "KnownHosts": knownhosts.Line([]string{lanAddr}, key), "Image": image,
		"Forwards": forwards, "Server": lanAddr})
	if err != nil {
		return err
	}
	if err := u.apply(ctx, man); err != nil {
		return err
	}
	if u.r.Spec.Ingress == nil {
		return nil
	}
	dial, err := u.p.InternetDialer(ctx)
	if err != nil {
		return err
	}
	inet := probe.NewHTTP("internet", fmt.Sprintf("http://%s:%d/", t.Server.PublicAddress, t.Ports[0].Public),
		probe.WithHost(u.r.Spec.Probes.Host), probe.WithMarker(agentpkg.DemoMarker), probe.WithDialer(dial))
	return u.waitProbe(ctx, inet, 2*time.Minute, "from the Internet vantage point")
}

// ups configures NUT on the UPS master: dummy-ups as the rack's UPS, upsd, and
// upsmon, whose shutdown command halts the machines over SSH in the topology's
// order (with the rack's key and known_hosts) and then the master itself.
func (u *upRun) ups(ctx context.Context) error {
	up := u.r.Spec.UPS
	if up == nil {
		return nil
	}
	n := u.nodes[up.Node]
	var stages [][]string
	for _, st := range up.ShutdownOrder {
		var addrs []string
		for _, name := range st {
			addrs = append(addrs, u.r.Node(name).Address)
		}
		stages = append(stages, addrs)
	}
	data := map[string]any{"Rack": u.r.Metadata.Name, "Name": up.Name, "Node": up.Node, "Stages": stages,
		"Password": sha(u.cert)[:16], "Runtime": int(up.BatteryBudget.Seconds())}
	files := map[string]string{"nut.conf": "/etc/nut/nut.conf", "ups.conf": "/etc/nut/ups.conf", "ups.dev": "/etc/nut/" + up.Name + ".dev",
		"upsd.conf": "/etc/nut/upsd.conf", "upsd.users": "/etc/nut/upsd.users", "upsmon.conf": "/etc/nut/upsmon.conf",
		"rack-shutdown": "/usr/local/sbin/rackdrill-rack-shutdown"}
	for name, path := range files {
		content, err := render(name, data)
		if err != nil {
			return err
		}
		if err := write(ctx, n, path, content); err != nil {
			return u.fail(ctx, "write "+path, n, err)
		}
	}
	if err := write(ctx, n, "/etc/nut/rackdrill_id", string(u.sshKey)); err != nil {
		return u.fail(ctx, "write the shutdown's key", n, err)
	}
	if err := write(ctx, n, "/etc/nut/known_hosts", u.knownHosts); err != nil {
		return u.fail(ctx, "write the shutdown's known_hosts", n, err)
	}
	// NUT keeps its sockets in /run/nut, which tmpfiles would make at boot; the
	// machines do not run tmpfiles (lab-notes), so each NUT unit makes it, also
	// after the power returns.
	dropIn := "[Service]\nExecStartPre=+/usr/bin/install -d -o root -g nut -m 0770 /run/nut\n"
	for _, unit := range []string{"nut-driver@.service", "nut-server.service", "nut-monitor.service"} {
		if err := write(ctx, n, "/etc/systemd/system/"+unit+".d/rackdrill.conf", dropIn); err != nil {
			return u.fail(ctx, "write the NUT units' drop-in", n, err)
		}
	}
	setup := "chown root:nut /etc/nut/* && chmod 640 /etc/nut/* && chmod 600 /etc/nut/rackdrill_id && " +
		"chmod 755 /usr/local/sbin/rackdrill-rack-shutdown && systemctl daemon-reload && " +
		"systemctl enable --now nut-driver@" + up.Name + " nut-server nut-monitor"
	if err := exec.Run(n.Command(ctx, "sh", "-c", setup)); err != nil {
		return u.fail(ctx, "start NUT", n, err)
	}
	return Poll(ctx, time.Minute, func() error {
		out, err := exec.Output(n.Command(ctx, "upsc", up.Name+"@localhost", "ups.status"))
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(out)) != "OL" {
			return fmt.Errorf("UPS %s reports %q, want OL (online)", up.Name, strings.TrimSpace(string(out)))
		}
		return nil
	})
}

// Poll retries fn every second until it succeeds or limit passes.
func Poll(ctx context.Context, limit time.Duration, fn func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
