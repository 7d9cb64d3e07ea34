package topology

// The validation of the rack's services: MetalLB, the ingress, the tunnel,
// storage, the UPS, the probes and the SSH inventory.

import (
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func (v *validator) metallb() {
	m := v.r.Spec.MetalLB
	if m == nil {
		return
	}
	p := field.NewPath("spec", "metallb")
	if m.Mode != "layer2" {
		v.add(field.NotSupported(p.Child("mode"), m.Mode, []string{"layer2"}))
	}
	pool, err := ParseRange(m.Pool)
	if err != nil {
		v.add(field.Invalid(p.Child("pool"), m.Pool, err.Error()))
		return
	}
	if admin := v.r.AdminNetwork(); admin != nil && admin.Prefix().IsValid() {
		pre := admin.Prefix()
		if !pre.Contains(pool.First) || !pre.Contains(pool.Last) {
			v.add(field.Invalid(p.Child("pool"), m.Pool, fmt.Sprintf("outside the admin network %s (%s)", admin.Name, admin.CIDR)))
		}
		if pool.Contains(pre.Addr()) || pool.Contains(lastAddr(pre)) {
			v.add(field.Invalid(p.Child("pool"), m.Pool, "includes the network or broadcast address"))
		}
	}
	for _, n := range v.r.Spec.Nodes {
		if pool.Contains(n.Addr()) {
			v.add(field.Invalid(p.Child("pool"), m.Pool, fmt.Sprintf("overlaps node %s's address %s", n.Name, n.Address)))
		}
	}
	if vip, err := netip.ParseAddr(v.r.Spec.ControlPlane.Endpoint.Host); err == nil && pool.Contains(vip) {
		v.add(field.Invalid(p.Child("pool"), m.Pool, fmt.Sprintf("overlaps the API VIP %s", vip)))
	}
}

func (v *validator) ingress() {
	in := v.r.Spec.Ingress
	if in == nil {
		return
	}
	p := field.NewPath("spec", "ingress")
	if !slices.Contains(knownControllers, in.Controller) {
		v.add(field.NotSupported(p.Child("controller"), in.Controller, knownControllers))
	}
	if in.CertMinValidity.Duration < 0 {
		v.add(field.Invalid(p.Child("certMinValidity"), in.CertMinValidity.Duration.String(), "must not be negative"))
	}
	ip, err := netip.ParseAddr(in.IP)
	if err != nil {
		v.add(field.Invalid(p.Child("ip"), in.IP, "must be an IP address"))
		return
	}
	if m := v.r.Spec.MetalLB; m != nil {
		if pool, err := ParseRange(m.Pool); err == nil && !pool.Contains(ip) {
			v.add(field.Invalid(p.Child("ip"), in.IP, fmt.Sprintf("outside the MetalLB pool %s", pool)))
		}
	}
	if admin := v.r.AdminNetwork(); admin != nil {
		if why := notAHost(ip, admin.Prefix()); why != "" {
			v.add(field.Invalid(p.Child("ip"), in.IP, why))
		}
	}
}

func (v *validator) tunnel() {
	t := v.r.Spec.Tunnel
	if t == nil {
		return
	}
	p := field.NewPath("spec", "tunnel")
	if t.Type != TunnelFRP && t.Type != TunnelSSH {
		v.add(field.NotSupported(p.Child("type"), t.Type, []TunnelType{TunnelFRP, TunnelSSH}))
	}
	if t.Client.Namespace == "" {
		v.add(field.Required(p.Child("client", "namespace"), ""))
	}
	if t.Client.Deployment == "" {
		v.add(field.Required(p.Child("client", "deployment"), ""))
	}
	v.nodeRef(p.Child("server", "node"), t.Server.Node, RoleVPS)
	if t.Server.PublicAddress != "" {
		if _, err := netip.ParseAddr(t.Server.PublicAddress); err != nil && len(validation.IsDNS1123Subdomain(t.Server.PublicAddress)) > 0 {
			v.add(field.Invalid(p.Child("server", "publicAddress"), t.Server.PublicAddress, "must be an IP address or a DNS name"))
		}
	}
	if len(t.Ports) == 0 {
		v.add(field.Required(p.Child("ports"), "the forwarded ports, e.g. 80 and 443"))
	}
	public := map[int]bool{}
	for i, port := range t.Ports {
		pp := p.Child("ports").Index(i)
		for _, f := range []struct {
			name string
			val  int
		}{{"public", port.Public}, {"target", port.Target}} {
			if f.val < 1 || f.val > 65535 {
				v.add(field.Invalid(pp.Child(f.name), f.val, "must be 1 to 65535"))
			}
		}
		if public[port.Public] {
			v.add(field.Duplicate(pp.Child("public"), port.Public))
		}
		public[port.Public] = true
	}
	if t.Target == "" {
		v.add(field.Required(p.Child("target"), "where forwarded traffic goes (defaults to spec.ingress.ip when there is an ingress)"))
	} else if _, err := netip.ParseAddr(t.Target); err != nil {
		v.add(field.Invalid(p.Child("target"), t.Target, "must be an IP address"))
	}
}

// nfsNetwork checks the network the NFS server is reached on: the NAS has
// an address there, and the nodes that run the apps (whose pods write to
// it) should have one too, unless the network is routed to theirs.
func (v *validator) nfsNetwork(p *field.Path, nas *Node) {
	name := v.r.Spec.Storage.NFS.Network
	net := v.r.Network(name)
	if net == nil {
		v.add(field.NotFound(p, name))
		return
	}
	if nas.AddressOn(name) == "" {
		v.add(field.Invalid(p, name, fmt.Sprintf("node %s has no address on it (spec.nodes[].addresses)", nas.Name)))
		return
	}
	if net.Gateway != "" {
		return // routed: the nodes reach it through the gateway
	}
	var missing []string
	for _, n := range v.r.AppNodes() {
		if n.Network != name && n.AddressOn(name) == "" {
			missing = append(missing, n.Name)
		}
	}
	if len(missing) > 0 {
		v.warn(p, "the NFS server is reached on network %s, which has no gateway and no address of these nodes that run the apps: %s; their pods may not reach it",
			name, strings.Join(missing, ", "))
	}
}

// nasAddress says whether addr is one of the NFS server's addresses.
func (v *validator) nasAddress(addr string) bool {
	n := v.r.Node(v.r.Spec.Storage.NFS.Node)
	if n == nil {
		return false
	}
	return n.Address == addr || slices.ContainsFunc(n.Addresses, func(a NodeAddress) bool { return a.Address == addr })
}

func (v *validator) storage() {
	s := v.r.Spec.Storage
	if s == nil {
		return
	}
	p := field.NewPath("spec", "storage")
	if s.NFS != nil {
		if nas := v.nodeRef(p.Child("nfs", "node"), s.NFS.Node, RoleNAS); nas != nil {
			v.nfsNetwork(p.Child("nfs", "network"), nas)
		}
		if len(s.NFS.Exports) == 0 {
			v.add(field.Required(p.Child("nfs", "exports"), "the exported directories"))
		}
		for i, e := range s.NFS.Exports {
			if !path.IsAbs(e) {
				v.add(field.Invalid(p.Child("nfs", "exports").Index(i), e, "must be an absolute path"))
			}
		}
	}
	names := map[string]bool{}
	defaults := 0
	for i, sc := range s.StorageClasses {
		sp := p.Child("storageClasses").Index(i)
		if names[sc.Name] {
			v.add(field.Duplicate(sp.Child("name"), sc.Name))
		}
		names[sc.Name] = true
		for _, msg := range validation.IsDNS1123Subdomain(sc.Name) {
			v.add(field.Invalid(sp.Child("name"), sc.Name, msg))
		}
		if sc.Provisioner == "" {
			v.add(field.Required(sp.Child("provisioner"), "e.g. nfs.csi.k8s.io"))
		}
		if sc.ReclaimPolicy != "" && sc.ReclaimPolicy != "Delete" && sc.ReclaimPolicy != "Retain" {
			v.add(field.NotSupported(sp.Child("reclaimPolicy"), sc.ReclaimPolicy, []string{"Delete", "Retain"}))
		}
		if nfs := v.r.NFSAddress(); sc.Server != "" && nfs != "" && sc.Server != nfs && v.nasAddress(sc.Server) {
			v.warn(sp.Child("server"), "%s is the NFS server's address on another network than %s, where it is reached (%s)",
				sc.Server, s.NFS.Network, nfs)
		}
		if sc.Share != "" && !path.IsAbs(sc.Share) {
			v.add(field.Invalid(sp.Child("share"), sc.Share, "must be an absolute path"))
		}
		if sc.Default {
			defaults++
		}
	}
	if defaults > 1 {
		v.add(field.Invalid(p.Child("storageClasses"), defaults, "at most one StorageClass is the default"))
	}
}

func (v *validator) ups() {
	u := v.r.Spec.UPS
	if u == nil {
		return
	}
	p := field.NewPath("spec", "ups")
	v.nodeRef(p.Child("node"), u.Node, "")
	if u.Name == "" {
		v.add(field.Required(p.Child("name"), "the UPS's name in NUT's ups.conf (with commands, the rack's own name for it)"))
	}
	if c := u.Commands; c != nil {
		cp := p.Child("commands")
		if strings.TrimSpace(c.Status) == "" {
			v.add(field.Required(cp.Child("status"), "the command that prints the UPS's state as upsc does (ups.status, battery.charge)"))
		}
		if strings.TrimSpace(c.ForcedShutdown) == "" {
			v.add(field.Required(cp.Child("forcedShutdown"), "the command that begins the rack's shutdown, as the mains failing would"))
		}
		if u.Driver != "" {
			v.add(field.Invalid(p.Child("driver"), u.Driver, "a driver is NUT's: a UPS read through spec.ups.commands has none"))
		}
		for _, at := range v.upsStopOverrides() {
			v.add(field.Invalid(at, "(set)", "spec.ups.commands.forcedShutdown already says how the UPS's shutdown is forced; keep one of the two"))
		}
	}
	if u.BatteryBudget.Duration <= 0 {
		v.add(field.Required(p.Child("batteryBudget"), "how long the battery lasts, e.g. 5m"))
	}
	if u.MinCharge < 1 || u.MinCharge > 100 {
		v.add(field.Invalid(p.Child("minCharge"), u.MinCharge, "must be 1 to 100 (percent)"))
	}
	if len(u.ShutdownOrder) == 0 {
		v.add(field.Required(p.Child("shutdownOrder"), "the stages in which machines halt"))
	}
	seen := map[string]bool{}
	for i, stage := range u.ShutdownOrder {
		if len(stage) == 0 {
			v.add(field.Required(p.Child("shutdownOrder").Index(i), "an empty stage"))
		}
		for j, name := range stage {
			np := p.Child("shutdownOrder").Index(i).Index(j)
			if v.nodeRef(np, name, "") == nil {
				continue
			}
			switch {
			case name == u.Node:
				v.add(field.Invalid(np, name, "the UPS master halts last by itself; do not list it"))
			case seen[name]:
				v.add(field.Duplicate(np, name))
			}
			seen[name] = true
		}
	}
}

// upsStopOverrides are the spec.ssh.services.ups.stop fields the topology
// sets, rack-wide and per node.
func (v *validator) upsStopOverrides() []*field.Path {
	var out []*field.Path
	if s := v.r.Spec.SSH; s != nil && s.Services != nil && s.Services.UPS != nil && s.Services.UPS.Stop != "" {
		out = append(out, field.NewPath("spec", "ssh", "services", "ups", "stop"))
	}
	for i, n := range v.r.Spec.Nodes {
		if s := n.SSH; s != nil && s.Services != nil && s.Services.UPS != nil && s.Services.UPS.Stop != "" {
			out = append(out, field.NewPath("spec", "nodes").Index(i).Child("ssh", "services", "ups", "stop"))
		}
	}
	return out
}

func (v *validator) probes() {
	p := field.NewPath("spec", "probes")
	pr := v.r.Spec.Probes
	if pr.Interval.Duration <= 0 {
		v.add(field.Invalid(p.Child("interval"), pr.Interval.Duration.String(), "must be positive"))
	}
	if pr.Timeout.Duration <= 0 {
		v.add(field.Invalid(p.Child("timeout"), pr.Timeout.Duration.String(), "must be positive"))
	}
	for _, msg := range validation.IsDNS1123Label(pr.Namespace) {
		v.add(field.Invalid(p.Child("namespace"), pr.Namespace, msg))
	}
}

// MinDeadMan is the shortest dead-man delay: the harness re-arms the timer
// every third of it, over SSH.
const MinDeadMan = 15 * time.Second

func (v *validator) ssh() {
	check := func(p *field.Path, s *SSH) {
		if s == nil {
			return
		}
		if d := s.DeadMan.Duration; d != 0 && d < MinDeadMan {
			v.add(field.Invalid(p.Child("deadMan"), s.DeadMan.Duration.String(), fmt.Sprintf("must be at least %s (the harness re-arms it every third of it)", MinDeadMan)))
		}
		if s.Port < 0 || s.Port > 65535 {
			v.add(field.Invalid(p.Child("port"), s.Port, "must be a TCP port"))
		}
		if t := s.DeadManTimer; t != "" && t != TimerSystemdRun && t != TimerShell {
			v.add(field.NotSupported(p.Child("deadManTimer"), t, []DeadManTimer{TimerSystemdRun, TimerShell}))
		}
	}
	check(field.NewPath("spec", "ssh"), v.r.Spec.SSH)
	for i := range v.r.Spec.Nodes {
		n := &v.r.Spec.Nodes[i]
		p := field.NewPath("spec", "nodes").Index(i)
		check(p.Child("ssh"), n.SSH)
		if pw := n.Power; pw != nil && (pw.Command == "") == !pw.Manual {
			v.add(field.Invalid(p.Child("power"), fmt.Sprintf("command=%q manual=%v", pw.Command, pw.Manual), "set exactly one of command (a command that powers "+n.Name+" on) or manual: true"))
		}
	}
}
