package topology

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var (
	knownArches      = []string{"amd64", "arm64", "arm", "ppc64le", "s390x", "riscv64"}
	knownEffects     = []string{"NoSchedule", "PreferNoSchedule", "NoExecute"}
	knownControllers = []string{"traefik", "ingress-nginx", "nginx"}
	versionRE        = regexp.MustCompile(`^v\d+\.\d+\.\d+(\+k3s\d+)?$`)
	// ifnameRE is what Linux accepts as an interface name (IFNAMSIZ 16,
	// with the terminating NUL).
	ifnameRE = regexp.MustCompile(`^[^\s/:]{1,15}$`)
)

// Validate checks a defaulted rack. It returns every error it finds, and warnings
// for choices that are valid but weaken what the rack promises.
func Validate(r *Rack) (field.ErrorList, []Warning) {
	v := validator{r: r}
	v.metadata()
	v.kubernetes()
	v.networks()
	v.nodes()
	v.controlPlane()
	v.metallb()
	v.ingress()
	v.tunnel()
	v.storage()
	v.ups()
	v.probes()
	v.ssh()
	return v.errs, v.warns
}

type validator struct {
	r     *Rack
	errs  field.ErrorList
	warns []Warning
}

func (v *validator) add(e *field.Error) { v.errs = append(v.errs, e) }

func (v *validator) warn(p *field.Path, format string, args ...any) {
	v.warns = append(v.warns, Warning{Field: p.String(), Message: fmt.Sprintf(format, args...)})
}

func (v *validator) metadata() {
	p := field.NewPath("metadata", "name")
	name := v.r.Metadata.Name
	if name == "" {
		v.add(field.Required(p, "the rack's name labels every object the harness creates"))
		return
	}
	for _, msg := range validation.IsDNS1123Label(name) {
		v.add(field.Invalid(p, name, msg))
	}
}

func (v *validator) kubernetes() {
	p := field.NewPath("spec", "kubernetes")
	k := v.r.Spec.Kubernetes
	if !slices.Contains([]Distribution{DistributionKubeadm, DistributionK3s}, k.Distribution) {
		v.add(field.NotSupported(p.Child("distribution"), k.Distribution, []Distribution{DistributionKubeadm, DistributionK3s}))
	}
	if !versionRE.MatchString(k.Version) {
		v.add(field.Invalid(p.Child("version"), k.Version, "must look like v1.33.13 (or v1.33.5+k3s1)"))
	} else if k3sRelease := strings.Contains(k.Version, "+k3s"); k3sRelease && k.Distribution == DistributionKubeadm {
		v.add(field.Invalid(p.Child("distribution"), k.Distribution, fmt.Sprintf("version %s is a K3s release: write distribution: k3s, or a Kubernetes version such as v1.33.13", k.Version)))
	} else if !k3sRelease && k.Distribution == DistributionK3s {
		v.add(field.Invalid(p.Child("version"), k.Version, "distribution k3s: give K3s's release, such as v1.33.5+k3s1"))
	}
	var cluster []netip.Prefix
	for _, f := range []struct{ name, val string }{{"podSubnet", k.PodSubnet}, {"serviceSubnet", k.ServiceSubnet}} {
		pre, err := netip.ParsePrefix(f.val)
		if err != nil {
			v.add(field.Invalid(p.Child(f.name), f.val, "must be a CIDR"))
			continue
		}
		// Pods, Services and machines must not share addresses: a
		// Service IP that is also a machine's is unreachable one way.
		for _, q := range cluster {
			if q.Overlaps(pre) {
				v.add(field.Invalid(p.Child(f.name), f.val, fmt.Sprintf("overlaps spec.kubernetes.podSubnet (%s)", q)))
			}
		}
		for i, n := range v.r.Spec.Networks {
			if q, err := netip.ParsePrefix(n.CIDR); err == nil && q.Overlaps(pre) {
				v.add(field.Invalid(p.Child(f.name), f.val, fmt.Sprintf("overlaps spec.networks[%d] %s (%s)", i, n.Name, n.CIDR)))
			}
		}
		cluster = append(cluster, pre)
	}
	switch v.r.Spec.Provider {
	case ProviderContainers, ProviderK3d, ProviderSSH:
	case "":
		v.add(field.Required(field.NewPath("spec", "provider"),
			"say which: ssh (your own machines), containers (the offline lab in Docker) or k3d; a rack file without it is never taken for the lab"))
	default:
		v.add(field.NotSupported(field.NewPath("spec", "provider"), v.r.Spec.Provider, []ProviderName{ProviderContainers, ProviderK3d, ProviderSSH}))
	}
}

func (v *validator) networks() {
	p := field.NewPath("spec", "networks")
	if len(v.r.Spec.Networks) == 0 {
		v.add(field.Required(p, "at least one network with purpose admin"))
		return
	}
	names := map[string]bool{}
	var prefixes []netip.Prefix
	for i, n := range v.r.Spec.Networks {
		np := p.Index(i)
		if n.Name == "" {
			v.add(field.Required(np.Child("name"), ""))
		} else if names[n.Name] {
			v.add(field.Duplicate(np.Child("name"), n.Name))
		}
		names[n.Name] = true
		pre, err := netip.ParsePrefix(n.CIDR)
		if err != nil {
			v.add(field.Invalid(np.Child("cidr"), n.CIDR, "must be a CIDR such as 10.0.0.0/24"))
		} else {
			for j, q := range prefixes {
				if q.IsValid() && q.Overlaps(pre) {
					v.add(field.Invalid(np.Child("cidr"), n.CIDR, fmt.Sprintf("overlaps spec.networks[%d] (%s)", j, q)))
				}
			}
		}
		prefixes = append(prefixes, pre)
		switch n.Purpose {
		case PurposeAdmin, PurposeStorage, PurposeInternode, PurposeInternet:
		default:
			v.add(field.NotSupported(np.Child("purpose"), n.Purpose, []NetworkPurpose{PurposeAdmin, PurposeStorage, PurposeInternode, PurposeInternet}))
		}
		if n.VLAN < 0 || n.VLAN > 4094 {
			v.add(field.Invalid(np.Child("vlan"), n.VLAN, "must be 0 to 4094"))
		}
		if n.Gateway != "" {
			if g, err := netip.ParseAddr(n.Gateway); err != nil || (pre.IsValid() && !pre.Contains(g)) {
				v.add(field.Invalid(np.Child("gateway"), n.Gateway, "must be an address inside cidr"))
			}
		}
	}
	if v.r.AdminNetwork() == nil {
		v.add(field.Required(p, "no network has purpose admin: node addresses, the API VIP and the MetalLB pool live on it"))
	}
}

func (v *validator) nodes() {
	p := field.NewPath("spec", "nodes")
	if len(v.r.Spec.Nodes) == 0 {
		v.add(field.Required(p, "a rack has at least one server"))
		return
	}
	names := map[string]bool{}
	addrs := map[netip.Addr]string{}
	for i, n := range v.r.Spec.Nodes {
		np := p.Index(i)
		switch {
		case n.Name == "":
			v.add(field.Required(np.Child("name"), ""))
		case names[n.Name]:
			v.add(field.Duplicate(np.Child("name"), n.Name))
		default:
			for _, msg := range validation.IsDNS1123Subdomain(n.Name) {
				v.add(field.Invalid(np.Child("name"), n.Name, msg))
			}
		}
		names[n.Name] = true
		if len(n.Roles) == 0 {
			v.add(field.Required(np.Child("roles"), "one or more of server, worker, loadbalancer, nas, vps"))
		}
		for j, role := range n.Roles {
			if !slices.Contains(Roles, role) {
				v.add(field.NotSupported(np.Child("roles").Index(j), role, Roles))
			}
		}
		if n.HasRole(RoleServer) && n.HasRole(RoleWorker) {
			v.add(field.Invalid(np.Child("roles"), n.Roles, "a node is a server or a worker, not both (servers run workloads unless tainted)"))
		}
		v.nodeAddress(np, n, addrs)
		v.moreAddresses(np, n, addrs)
		if !slices.Contains(knownArches, n.Arch) {
			v.add(field.Invalid(np.Child("arch"), n.Arch, "the architecture of the machine's userland, as Kubernetes names it: "+
				strings.Join(knownArches, ", ")+" (uname's x86_64, aarch64 and armv7l are taken too; a Pi with 32-bit Raspberry Pi OS is arm, whatever its kernel)"))
		}
		for k, val := range n.Labels {
			for _, msg := range validation.IsQualifiedName(k) {
				v.add(field.Invalid(np.Child("labels").Key(k), k, msg))
			}
			for _, msg := range validation.IsValidLabelValue(val) {
				v.add(field.Invalid(np.Child("labels").Key(k), val, msg))
			}
		}
		for j, t := range n.Taints {
			tp := np.Child("taints").Index(j)
			for _, msg := range validation.IsQualifiedName(t.Key) {
				v.add(field.Invalid(tp.Child("key"), t.Key, msg))
			}
			for _, msg := range validation.IsValidLabelValue(t.Value) {
				v.add(field.Invalid(tp.Child("value"), t.Value, msg))
			}
			if !slices.Contains(knownEffects, t.Effect) {
				v.add(field.NotSupported(tp.Child("effect"), t.Effect, knownEffects))
			}
		}
	}
	servers := v.r.NodesWithRole(RoleServer)
	switch {
	case len(servers) == 0:
		v.add(field.Required(p, "no node has role server"))
	case len(servers)%2 == 0:
		n := len(servers)
		quorum := Quorum(n)
		v.warn(p, "%d servers: etcd quorum is %d, so the rack survives the loss of %d server(s), no more than with %d; use an odd number",
			n, quorum, n-quorum, n-1)
	}
}

func (v *validator) nodeAddress(np *field.Path, n Node, seen map[netip.Addr]string) {
	if n.Address == "" && v.r.Spec.Provider == ProviderK3d {
		return // Docker assigns k3d's node addresses; the provider reads them
	}
	net := v.r.Network(n.Network)
	if net == nil {
		v.add(field.NotFound(np.Child("network"), n.Network))
	}
	v.hostAddress(np.Child("address"), n.Address, n.Name, net, seen)
	if net == nil {
		return
	}
	if net.Purpose == PurposeInternet && !(len(n.Roles) == 1 && n.Roles[0] == RoleVPS) {
		v.add(field.Invalid(np.Child("network"), n.Network, "only a vps node lives on the internet network"))
	}
}

// moreAddresses checks a node's addresses on the rack's other networks: one
// per network, each a host of its network, none another machine's.
func (v *validator) moreAddresses(np *field.Path, n Node, seen map[netip.Addr]string) {
	on := map[string]bool{n.Network: true}
	for i, extra := range n.Addresses {
		ap := np.Child("addresses").Index(i)
		net := v.r.Network(extra.Network)
		switch {
		case extra.Network == "":
			v.add(field.Required(ap.Child("network"), "the network this address is on"))
		case net == nil:
			v.add(field.NotFound(ap.Child("network"), extra.Network))
		case on[extra.Network]:
			v.add(field.Duplicate(ap.Child("network"), fmt.Sprintf("%s (a node has one address per network)", extra.Network)))
		case net.Purpose == PurposeInternet:
			v.add(field.Invalid(ap.Child("network"), extra.Network, "only a vps node lives on the internet network"))
		}
		on[extra.Network] = true
		v.hostAddress(ap.Child("address"), extra.Address, n.Name, net, seen)
	}
}

// hostAddress checks address, node's at field p: an IP address, no other
// machine's, and a host of net (when the network is known).
func (v *validator) hostAddress(p *field.Path, address, node string, net *Network, seen map[netip.Addr]string) {
	a, err := netip.ParseAddr(address)
	if err != nil {
		v.add(field.Invalid(p, address, "must be an IP address"))
		return
	}
	if other, dup := seen[a]; dup {
		v.add(field.Duplicate(p, fmt.Sprintf("%s (also node %s)", address, other)))
	}
	seen[a] = node
	if net == nil {
		return
	}
	if pre := net.Prefix(); pre.IsValid() && !pre.Contains(a) {
		v.add(field.Invalid(p, address, fmt.Sprintf("outside its network %s (%s)", net.Name, net.CIDR)))
	} else if why := notAHost(a, pre); why != "" {
		v.add(field.Invalid(p, address, why))
	}
}

// nodeRef checks that name is a node holding role.
func (v *validator) nodeRef(p *field.Path, name string, role Role) *Node {
	if name == "" {
		v.add(field.Required(p, "a node name"))
		return nil
	}
	n := v.r.Node(name)
	if n == nil {
		v.add(field.NotFound(p, name))
		return nil
	}
	if role != "" && !n.HasRole(role) {
		v.add(field.Invalid(p, name, fmt.Sprintf("node %s does not have role %s", name, role)))
	}
	return n
}

func (v *validator) controlPlane() {
	p := field.NewPath("spec", "controlPlane")
	cp := v.r.Spec.ControlPlane
	ep := p.Child("endpoint")
	if cp.Endpoint.Host == "" {
		v.add(field.Required(ep.Child("host"), "the API VIP or load balancer address"))
	}
	if cp.Endpoint.Port < 1 || cp.Endpoint.Port > 65535 {
		v.add(field.Invalid(ep.Child("port"), cp.Endpoint.Port, "must be 1 to 65535"))
	}
	for i, san := range cp.TLSSANs {
		if _, err := netip.ParseAddr(san); err == nil {
			continue
		}
		if msgs := validation.IsDNS1123Subdomain(san); len(msgs) > 0 {
			v.add(field.Invalid(p.Child("tlsSANs").Index(i), san, "must be an IP address or a DNS name"))
		}
	}
	if ka := cp.Keepalived; ka != nil {
		kp := p.Child("keepalived")
		vip, err := netip.ParseAddr(cp.Endpoint.Host)
		admin := v.r.AdminNetwork()
		switch {
		case err != nil:
			v.add(field.Invalid(ep.Child("host"), cp.Endpoint.Host, "with keepalived the endpoint is its VIP and must be an IP address"))
		case admin != nil && admin.Prefix().IsValid() && !admin.Prefix().Contains(vip):
			v.add(field.Invalid(ep.Child("host"), cp.Endpoint.Host, fmt.Sprintf("the VIP is outside its network %s (%s)", admin.Name, admin.CIDR)))
		default:
			if admin != nil {
				if why := notAHost(vip, admin.Prefix()); why != "" {
					v.add(field.Invalid(ep.Child("host"), cp.Endpoint.Host, why))
				}
			}
			for _, n := range v.r.Spec.Nodes {
				if n.Addr() == vip {
					v.add(field.Invalid(ep.Child("host"), cp.Endpoint.Host, fmt.Sprintf("the VIP is node %s's own address", n.Name)))
				}
			}
		}
		if !ifnameRE.MatchString(ka.Interface) || ka.Interface == "." || ka.Interface == ".." {
			v.add(field.Invalid(kp.Child("interface"), ka.Interface, "must be a network interface name such as eth0 or enp3s0 (at most 15 characters, no spaces or slashes)"))
		}
		if ka.VirtualRouterID < 1 || ka.VirtualRouterID > 255 {
			v.add(field.Invalid(kp.Child("virtualRouterID"), ka.VirtualRouterID, "must be 1 to 255"))
		}
		if len(ka.Members) == 0 {
			v.add(field.Required(kp.Child("members"), "the nodes running keepalived"))
		}
		prios := map[int]string{}
		var members []string
		for _, m := range ka.Members {
			members = append(members, m.Node)
		}
		v.once(kp.Child("members"), "node", members)
		for i, m := range ka.Members {
			mp := kp.Child("members").Index(i)
			v.nodeRef(mp.Child("node"), m.Node, RoleLoadBalancer)
			if m.Priority < 1 || m.Priority > 254 {
				v.add(field.Invalid(mp.Child("priority"), m.Priority, "must be 1 to 254"))
			}
			if other, dup := prios[m.Priority]; dup {
				v.add(field.Duplicate(mp.Child("priority"), fmt.Sprintf("%d (also %s): the MASTER must be unambiguous", m.Priority, other)))
			}
			prios[m.Priority] = m.Node
		}
	}
	if hp := cp.HAProxy; hp != nil {
		hpp := p.Child("haproxy")
		if len(hp.Nodes) == 0 {
			v.add(field.Required(hpp.Child("nodes"), "the nodes running HAProxy"))
		}
		for i, n := range hp.Nodes {
			v.nodeRef(hpp.Child("nodes").Index(i), n, RoleLoadBalancer)
		}
		for i, n := range hp.Backends {
			v.nodeRef(hpp.Child("backends").Index(i), n, RoleServer)
		}
		v.once(hpp.Child("nodes"), "", hp.Nodes)
		v.once(hpp.Child("backends"), "", hp.Backends)
		if hp.StatsPort < 1 || hp.StatsPort > 65535 {
			v.add(field.Invalid(hpp.Child("statsPort"), hp.StatsPort, "must be 1 to 65535"))
		}
	}
}

// once refuses a name listed twice under p (each element's child field, when
// given): the same member or backend twice is a typo, not a second machine.
func (v *validator) once(p *field.Path, child string, names []string) {
	first := map[string]int{}
	for i, n := range names {
		if j, dup := first[n]; dup {
			ep := p.Index(i)
			if child != "" {
				ep = ep.Child(child)
			}
			v.add(field.Duplicate(ep, fmt.Sprintf("%s (already at index %d)", n, j)))
			continue
		}
		first[n] = i
	}
}

// notAHost says why a cannot be a machine's address on pre (it is the
// network's own address or its broadcast address), or "".
func notAHost(a netip.Addr, pre netip.Prefix) string {
	if !a.Is4() || !pre.IsValid() || !pre.Addr().Is4() || pre.Bits() > 30 || !pre.Contains(a) {
		return ""
	}
	base := pre.Masked().Addr()
	b := base.As4()
	last := binary.BigEndian.Uint32(b[:]) | (1<<(32-pre.Bits()) - 1)
	binary.BigEndian.PutUint32(b[:], last)
	switch a {
	case base:
		return fmt.Sprintf("the network address of %s, not a host", pre)
	case netip.AddrFrom4(b):
		return fmt.Sprintf("the broadcast address of %s, not a host", pre)
	}
	return ""
}
