package topology

import "time"

// Service names what a fault takes down on a real machine.
type Service string

const (
	ServiceServer       Service = "server"
	ServiceWorker       Service = "worker"
	ServiceKeepalived   Service = "keepalived"
	ServiceHAProxy      Service = "haproxy"
	ServiceNFS          Service = "nfs"
	ServiceTunnelServer Service = "tunnelServer"
	ServiceUPS          Service = "ups"
)

// DefaultDeadMan is the delay of the dead-man timer when spec.ssh.deadMan is
// left out.
const DefaultDeadMan = 2 * time.Minute

// NFSChain is the harness's own iptables chain on the NAS: the NFS fault adds
// it, its revert removes it, and nothing else of the NAS's firewall is touched.
const NFSChain = "RACKDRILL-NFS"

// nfsBlock drops NFS (2049), the portmapper (111) and mountd (20048) in the
// harness's chain, hooked first into INPUT; run twice it leaves one hook.
const nfsBlock = `iptables -N ` + NFSChain + ` 2>/dev/null || iptables -F ` + NFSChain + `
for proto in tcp udp; do for port in 2049 111 20048; do iptables -A ` + NFSChain + ` -p $proto --dport $port -j DROP || exit 1; done; done
iptables -C INPUT -j ` + NFSChain + ` 2>/dev/null || iptables -I INPUT -j ` + NFSChain

// nfsUnblock removes every hook and the chain; idempotent.
const nfsUnblock = `while iptables -D INPUT -j ` + NFSChain + ` 2>/dev/null; do :; done
iptables -F ` + NFSChain + ` 2>/dev/null; iptables -X ` + NFSChain + ` 2>/dev/null; true`

// kubeadmDown is a server's or worker's Kubernetes dying at once: the kubelet
// killed (and kept from restarting), then every container of the node, the
// static pods of etcd and kube-apiserver included, killed with SIGKILL through
// containerd (crictl stopp where there is no ctr: CRI-O).
const kubeadmDown = `systemctl kill --signal=SIGKILL kubelet; systemctl stop kubelet
if command -v ctr >/dev/null; then
  for t in $(ctr -n k8s.io tasks ls -q); do ctr -n k8s.io tasks kill -s SIGKILL "$t" || true; done
else
  crictl pods -q | xargs -r crictl stopp
fi`

// DefaultServices are the commands of distribution d's machines with tunnel
// type t: systemd units as the distributions' installers name them.
func DefaultServices(d Distribution, t TunnelType) Services {
	unit := func(name string) *ServiceCommands {
		return &ServiceCommands{Stop: "systemctl stop " + name, Start: "systemctl start " + name}
	}
	s := Services{
		Keepalived:   unit("keepalived"),
		HAProxy:      unit("haproxy"),
		NFS:          &ServiceCommands{Stop: nfsBlock, Start: nfsUnblock},
		TunnelServer: unit("frps"),
		// Power returns by each machine's spec.nodes[].power; there is no
		// command that undoes a forced shutdown.
		UPS: &ServiceCommands{Stop: "upsmon -c fsd"},
	}
	if t == TunnelSSH {
		s.TunnelServer = unit("ssh")
	}
	switch d {
	case DistributionK3s:
		// k3s-killall.sh, installed with K3s, stops the k3s units and kills
		// every container and shim: the machine's Kubernetes is gone.
		s.Server = &ServiceCommands{Stop: "/usr/local/bin/k3s-killall.sh", Start: "systemctl start k3s"}
		s.Worker = &ServiceCommands{Stop: "/usr/local/bin/k3s-killall.sh", Start: "systemctl start k3s-agent"}
	default:
		s.Server = &ServiceCommands{Stop: kubeadmDown, Start: "systemctl start kubelet"}
		s.Worker = &ServiceCommands{Stop: kubeadmDown, Start: "systemctl start kubelet"}
	}
	return s
}

func (s *Services) get(svc Service) *ServiceCommands {
	if s == nil {
		return nil
	}
	switch svc {
	case ServiceServer:
		return s.Server
	case ServiceWorker:
		return s.Worker
	case ServiceKeepalived:
		return s.Keepalived
	case ServiceHAProxy:
		return s.HAProxy
	case ServiceNFS:
		return s.NFS
	case ServiceTunnelServer:
		return s.TunnelServer
	case ServiceUPS:
		return s.UPS
	}
	return nil
}

// ServiceCommands are the commands of service svc on node: the node's
// spec.nodes[].ssh.services, else the rack's spec.ssh.services, else the
// distribution's defaults. A field left empty takes the next one's.
func (r *Rack) ServiceCommands(svc Service, node string) ServiceCommands {
	def := DefaultServices(r.Spec.Kubernetes.Distribution, r.tunnelType())
	out := *def.get(svc)
	if u := r.Spec.UPS; svc == ServiceUPS && u != nil && !u.NUT() {
		out.Stop = u.Commands.ForcedShutdown
	}
	var layers []*Services
	if r.Spec.SSH != nil {
		layers = append(layers, r.Spec.SSH.Services)
	}
	if n := r.Node(node); n != nil && n.SSH != nil {
		layers = append(layers, n.SSH.Services)
	}
	for _, l := range layers {
		if c := l.get(svc); c != nil {
			if c.Stop != "" {
				out.Stop = c.Stop
			}
			if c.Start != "" {
				out.Start = c.Start
			}
		}
	}
	return out
}

// DeadMan is the dead-man delay of node: its own, the rack's, or the default.
func (r *Rack) DeadMan(node string) time.Duration {
	d := DefaultDeadMan
	if r.Spec.SSH != nil && r.Spec.SSH.DeadMan.Duration > 0 {
		d = r.Spec.SSH.DeadMan.Duration
	}
	if n := r.Node(node); n != nil && n.SSH != nil && n.SSH.DeadMan.Duration > 0 {
		d = n.SSH.DeadMan.Duration
	}
	return d
}

// DeadManTimer is how node's dead-man timer runs: its own, the rack's, or
// systemd-run.
func (r *Rack) DeadManTimer(node string) DeadManTimer {
	t := TimerSystemdRun
	if r.Spec.SSH != nil && r.Spec.SSH.DeadManTimer != "" {
		t = r.Spec.SSH.DeadManTimer
	}
	if n := r.Node(node); n != nil && n.SSH != nil && n.SSH.DeadManTimer != "" {
		t = n.SSH.DeadManTimer
	}
	return t
}

func (r *Rack) tunnelType() TunnelType {
	if r.Spec.Tunnel == nil {
		return TunnelFRP
	}
	return r.Spec.Tunnel.Type
}
