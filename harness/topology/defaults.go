package topology

import (
	"strings"
	"time"
)

// Defaults that a topology may leave out. They follow what the seeds' racks and
// their tools use by default (kubeadm's subnets, keepalived's router id 51,
// HAProxy's stats on 8404, MetalLB's namespace).
const (
	DefaultKubernetesVersion = "v1.33.13"
	DefaultPodSubnet         = "10.244.0.0/16"
	DefaultServiceSubnet     = "10.96.0.0/12"
	DefaultAPIPort           = 6443
	DefaultVirtualRouterID   = 51
	DefaultInterface         = "eth0"
	DefaultStatsPort         = 8404
	DefaultArch              = "amd64"
	DefaultProbeInterval     = 250 * time.Millisecond
	DefaultProbeTimeout      = 2 * time.Second
	DefaultProbeHost         = "demo.rackdrill.local"
	DefaultProbeNamespace    = "rackdrill-probes"
	DefaultUPSMinCharge      = 50
)

// SetDefaults fills what the file left out. It is idempotent.
func SetDefaults(r *Rack) {
	s := &r.Spec
	// No default provider: a rack file that leaves it out is refused
	// (validate), never taken for the Docker lab, whose networks would
	// take the rack's own addresses on the operator's machine.
	k := &s.Kubernetes
	if k.Distribution == "" {
		// A K3s release names itself (v1.33.5+k3s1): a K3s rack that leaves
		// the distribution out is not planned as a kubeadm one.
		k.Distribution = DistributionKubeadm
		if strings.Contains(k.Version, "+k3s") {
			k.Distribution = DistributionK3s
		}
	}
	if k.Version == "" {
		k.Version = DefaultKubernetesVersion
	}
	if k.PodSubnet == "" {
		k.PodSubnet = DefaultPodSubnet
	}
	if k.ServiceSubnet == "" {
		k.ServiceSubnet = DefaultServiceSubnet
	}
	admin := r.AdminNetwork()
	internet := r.networkByPurpose(PurposeInternet)
	for i := range s.Nodes {
		n := &s.Nodes[i]
		if n.Network == "" {
			switch {
			case len(n.Roles) == 1 && n.Roles[0] == RoleVPS && internet != nil:
				n.Network = internet.Name
			case admin != nil:
				n.Network = admin.Name
			}
		}
		if a, ok := CanonicalArch(n.Arch); ok {
			n.Arch = a // uname's name (aarch64, armv7l, x86_64) as Kubernetes says it
		}
		if n.Arch == "" {
			n.Arch = DefaultArch
		}
	}
	if st := s.Storage; st != nil && st.NFS != nil && st.NFS.Network == "" {
		if n := r.Node(st.NFS.Node); n != nil {
			st.NFS.Network = n.Network
			for _, a := range n.Addresses {
				if net := r.Network(a.Network); net != nil && net.Purpose == PurposeStorage {
					st.NFS.Network = a.Network
					break
				}
			}
		}
	}
	cp := &s.ControlPlane
	if cp.Endpoint.Port == 0 {
		cp.Endpoint.Port = DefaultAPIPort
	}
	if ka := cp.Keepalived; ka != nil {
		if ka.VirtualRouterID == 0 {
			ka.VirtualRouterID = DefaultVirtualRouterID
		}
		if ka.Interface == "" {
			ka.Interface = DefaultInterface
		}
	}
	if hp := cp.HAProxy; hp != nil {
		if len(hp.Nodes) == 0 && cp.Keepalived != nil {
			for _, m := range cp.Keepalived.Members {
				hp.Nodes = append(hp.Nodes, m.Node)
			}
		}
		if hp.StatsPort == 0 {
			hp.StatsPort = DefaultStatsPort
		}
		if len(hp.Backends) == 0 {
			for _, n := range r.NodesWithRole(RoleServer) {
				hp.Backends = append(hp.Backends, n.Name)
			}
		}
	}
	if m := s.MetalLB; m != nil {
		if m.Mode == "" {
			m.Mode = "layer2"
		}
		if m.Namespace == "" {
			m.Namespace = "metallb-system"
		}
	}
	if in := s.Ingress; in != nil {
		if in.Namespace == "" {
			in.Namespace = in.Controller
		}
		if in.Service == "" {
			in.Service = in.Controller
		}
	}
	if t := s.Tunnel; t != nil {
		if t.Target == "" && s.Ingress != nil {
			t.Target = s.Ingress.IP
		}
		if t.Server.PublicAddress == "" {
			if n := r.Node(t.Server.Node); n != nil {
				t.Server.PublicAddress = n.Address
			}
		}
	}
	if u := s.UPS; u != nil {
		if u.Driver == "" && u.NUT() {
			u.Driver = "usbhid-ups"
		}
		if u.MinCharge == 0 {
			u.MinCharge = DefaultUPSMinCharge
		}
	}
	// spec.ssh.port stays unset when left out: the user's ~/.ssh/config may
	// give one, else the ssh provider dials 22.
	p := &s.Probes
	if p.Interval.Duration == 0 {
		p.Interval.Duration = DefaultProbeInterval
	}
	if p.Timeout.Duration == 0 {
		p.Timeout.Duration = DefaultProbeTimeout
	}
	if p.Host == "" {
		p.Host = DefaultProbeHost
	}
	if p.Namespace == "" {
		p.Namespace = DefaultProbeNamespace
	}
}

// unameArches maps what `uname -m` and Debian's dpkg say to the names
// Kubernetes gives (a node's status.nodeInfo.architecture, image platforms).
var unameArches = map[string]string{
	"x86_64": "amd64", "amd64": "amd64",
	"aarch64": "arm64", "arm64": "arm64", "armv8": "arm64",
	"armv7l": "arm", "armv7": "arm", "armv8l": "arm", "armhf": "arm", "arm": "arm",
	"ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
}

// CanonicalArch is a machine architecture as Kubernetes names it: amd64,
// arm64, arm (32-bit ARMv7). It takes uname's and Debian's names too.
func CanonicalArch(a string) (string, bool) {
	c, ok := unameArches[strings.ToLower(strings.TrimSpace(a))]
	return c, ok
}
