package topology

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// AdminNetwork is the first network with purpose admin, or nil.
func (r *Rack) AdminNetwork() *Network { return r.networkByPurpose(PurposeAdmin) }

// InternetNetwork is the first network with purpose internet, or nil.
func (r *Rack) InternetNetwork() *Network { return r.networkByPurpose(PurposeInternet) }

func (r *Rack) networkByPurpose(p NetworkPurpose) *Network {
	for i := range r.Spec.Networks {
		if r.Spec.Networks[i].Purpose == p {
			return &r.Spec.Networks[i]
		}
	}
	return nil
}

// Network returns the network called name, or nil.
func (r *Rack) Network(name string) *Network {
	for i := range r.Spec.Networks {
		if r.Spec.Networks[i].Name == name {
			return &r.Spec.Networks[i]
		}
	}
	return nil
}

// Node returns the node called name, or nil.
func (r *Rack) Node(name string) *Node {
	for i := range r.Spec.Nodes {
		if r.Spec.Nodes[i].Name == name {
			return &r.Spec.Nodes[i]
		}
	}
	return nil
}

// NodesWithRole returns the nodes holding role, in file order.
func (r *Rack) NodesWithRole(role Role) []*Node {
	var out []*Node
	for i := range r.Spec.Nodes {
		if r.Spec.Nodes[i].HasRole(role) {
			out = append(out, &r.Spec.Nodes[i])
		}
	}
	return out
}

// RunsEtcd says whether the rack's servers surely run etcd: kubeadm's
// stacked etcd always; K3s's embedded etcd when it has several servers (a
// lone K3s server may keep its data in SQLite, with no --cluster-init).
func (r *Rack) RunsEtcd() bool {
	return r.Spec.Kubernetes.Distribution != DistributionK3s || len(r.NodesWithRole(RoleServer)) > 1
}

// NFSAddress is the address the NFS server is reached at: the NAS's address
// on spec.storage.nfs.network. "" when the rack has no NFS server.
func (r *Rack) NFSAddress() string {
	st := r.Spec.Storage
	if st == nil || st.NFS == nil {
		return ""
	}
	n := r.Node(st.NFS.Node)
	if n == nil {
		return ""
	}
	return n.AddressOn(st.NFS.Network)
}

// RunsApps says whether the rack's apps may be scheduled on n: a worker, or
// a K3s server (K3s does not taint its servers; kubeadm does), with no
// NoSchedule or NoExecute taint. A node tainted for one purpose (seed 000's
// storage=only) runs only what tolerates it, not the apps.
func (r *Rack) RunsApps(n *Node) bool {
	switch {
	case n.HasRole(RoleWorker):
	case n.HasRole(RoleServer) && r.Spec.Kubernetes.Distribution == DistributionK3s:
	default:
		return false
	}
	return !slices.ContainsFunc(n.Taints, Taint.KeepsAppsOff)
}

// AppNodes are the nodes that run the apps (RunsApps), in file order.
func (r *Rack) AppNodes() []*Node {
	var out []*Node
	for i := range r.Spec.Nodes {
		if r.RunsApps(&r.Spec.Nodes[i]) {
			out = append(out, &r.Spec.Nodes[i])
		}
	}
	return out
}

// IngressOnVIP says whether the ingress answers on the API's VIP (seed 000:
// ports 80/443 forwarded to the floating IP): the ingress then runs on the
// host network of the VIP's holders, with no load-balancer Service, and the
// LAN follows the VIP.
func (r *Rack) IngressOnVIP() bool {
	in := r.Spec.Ingress
	return in != nil && in.IP != "" && in.IP == r.Spec.ControlPlane.Endpoint.Host
}

// Quorum is etcd's quorum among n members: a majority.
func Quorum(members int) int { return members/2 + 1 }

// Prefix is the parsed CIDR of the network; the zero Prefix if it does not parse.
func (n *Network) Prefix() netip.Prefix {
	p, _ := netip.ParsePrefix(n.CIDR)
	return p.Masked()
}

// AddrRange is an inclusive range of addresses, as MetalLB pools are written.
type AddrRange struct{ First, Last netip.Addr }

// ParseRange reads "a.b.c.d-e.f.g.h", "a.b.c.d - e.f.g.h" or a CIDR.
func ParseRange(s string) (AddrRange, error) {
	s = strings.TrimSpace(s)
	if first, last, ok := strings.Cut(s, "-"); ok {
		a, err := netip.ParseAddr(strings.TrimSpace(first))
		if err != nil {
			return AddrRange{}, fmt.Errorf("first address: %w", err)
		}
		b, err := netip.ParseAddr(strings.TrimSpace(last))
		if err != nil {
			return AddrRange{}, fmt.Errorf("last address: %w", err)
		}
		if a.BitLen() != b.BitLen() {
			return AddrRange{}, fmt.Errorf("mixes IPv4 and IPv6")
		}
		if b.Less(a) {
			return AddrRange{}, fmt.Errorf("last address %s is before first address %s", b, a)
		}
		return AddrRange{a, b}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return AddrRange{}, fmt.Errorf("neither a range first-last nor a CIDR: %w", err)
	}
	p = p.Masked()
	return AddrRange{p.Addr(), lastAddr(p)}, nil
}

// Contains reports whether a lies in the range.
func (g AddrRange) Contains(a netip.Addr) bool {
	return a.IsValid() && a.BitLen() == g.First.BitLen() && !a.Less(g.First) && !g.Last.Less(a)
}

func (g AddrRange) String() string { return g.First.String() + "-" + g.Last.String() }

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		for j := 7; j >= 0; j-- {
			if i*8+(7-j) >= bits {
				b[i] |= 1 << j
			}
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// APIServerURL is the URL kubectl uses for this rack.
func (r *Rack) APIServerURL() string {
	ep := r.Spec.ControlPlane.Endpoint
	return "https://" + net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port))
}
