package topology

import (
	"fmt"
	"net/netip"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// APIVersion and Kind identify a topology file. The version is checked on load so
// that a file written for a later schema fails clearly instead of half-decoding.
const (
	APIVersion = "rackdrill.dev/v1alpha1"
	Kind       = "Rack"
)

// Rack is one rack as its architecture document describes it: the machines, the
// two load-balancing systems (API VIP and service load balancer), the ingress, the
// Internet tunnel, the storage and the UPS. The same file drives every provider:
// the lab builds it, k3d approximates it, the ssh provider adopts it.
type Rack struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       RackSpec `json:"spec"`
}

// Metadata names the rack. The name is the value of the rackdrill.dev/rack label on
// every Docker object the harness creates for it.
type Metadata struct {
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// RackSpec is the documented architecture.
type RackSpec struct {
	// Provider is the default provider for this rack: containers, k3d or ssh.
	// The --provider flag overrides it.
	Provider   ProviderName `json:"provider,omitempty"`
	Kubernetes Kubernetes   `json:"kubernetes"`
	// Networks are the rack's L2/L3 networks. The first network with purpose
	// "admin" is where node addresses, the API VIP and the MetalLB pool live.
	Networks     []Network    `json:"networks"`
	Nodes        []Node       `json:"nodes"`
	ControlPlane ControlPlane `json:"controlPlane"`
	MetalLB      *MetalLB     `json:"metallb,omitempty"`
	Ingress      *Ingress     `json:"ingress,omitempty"`
	Tunnel       *Tunnel      `json:"tunnel,omitempty"`
	Storage      *Storage     `json:"storage,omitempty"`
	UPS          *UPS         `json:"ups,omitempty"`
	SSH          *SSH         `json:"ssh,omitempty"`
	Probes       Probes       `json:"probes,omitempty"`
	// Matrix is the rack's own impact matrix file, for promises its
	// architecture document makes differently from rackdrill's; relative to
	// the topology file. Empty: the documented matrix built into rackdrill.
	// Either way rackdrill derives the rack's promises from it (rackdrill
	// plan prints them), and the --matrix flag overrides it.
	Matrix string `json:"matrix,omitempty"`
}

// AnnotationLab marks a topology of rackdrill's own lab (lab.yaml, and
// lab-ssh.yaml, which adopts it as a real rack): checks of what the lab cannot
// have (a StorageClass its pods could mount) are skipped with the reason.
const AnnotationLab = "rackdrill.dev/lab"

// ProviderName selects how the rack is built or reached.
type ProviderName string

const (
	ProviderContainers ProviderName = "containers"
	ProviderK3d        ProviderName = "k3d"
	ProviderSSH        ProviderName = "ssh"
)

// Distribution is the Kubernetes distribution the rack runs.
type Distribution string

const (
	DistributionKubeadm Distribution = "kubeadm"
	DistributionK3s     Distribution = "k3s"
)

// AdminKubeconfig is where a server of distribution d keeps the admin
// kubeconfig: kubeadm's admin.conf (its server is the control-plane
// endpoint), K3s's k3s.yaml (its server is the machine's own API).
func (d Distribution) AdminKubeconfig() string {
	if d == DistributionK3s {
		return "/etc/rancher/k3s/k3s.yaml"
	}
	return "/etc/kubernetes/admin.conf"
}

// Kubernetes describes the cluster software.
type Kubernetes struct {
	Distribution  Distribution `json:"distribution"`
	Version       string       `json:"version"`
	PodSubnet     string       `json:"podSubnet,omitempty"`
	ServiceSubnet string       `json:"serviceSubnet,omitempty"`
}

// NetworkPurpose says what traffic a network carries (seed 000 separates admin,
// storage and internode traffic on VLANs).
type NetworkPurpose string

const (
	PurposeAdmin     NetworkPurpose = "admin"
	PurposeStorage   NetworkPurpose = "storage"
	PurposeInternode NetworkPurpose = "internode"
	// PurposeInternet is the public side: the VPS and the Internet vantage point.
	// Nothing on it may route to an admin network.
	PurposeInternet NetworkPurpose = "internet"
)

// Network is one subnet of the rack.
type Network struct {
	Name    string         `json:"name"`
	CIDR    string         `json:"cidr"`
	Purpose NetworkPurpose `json:"purpose"`
	VLAN    int            `json:"vlan,omitempty"`
	Gateway string         `json:"gateway,omitempty"`
}

// Role is what a machine does in the rack. A machine may hold several roles: in
// seed 001 the NAS boxes are also keepalived BACKUPs; in seed 000 the control-plane
// nodes hold the VIP themselves.
type Role string

const (
	RoleServer       Role = "server"       // control plane (and etcd member)
	RoleWorker       Role = "worker"       // runs workloads only
	RoleLoadBalancer Role = "loadbalancer" // keepalived and/or HAProxy for the API
	RoleNAS          Role = "nas"          // NFS server
	RoleVPS          Role = "vps"          // public tunnel server
)

// Roles lists every role, in the order nodes are usually brought up.
var Roles = []Role{RoleLoadBalancer, RoleNAS, RoleServer, RoleWorker, RoleVPS}

// Node is one machine.
type Node struct {
	Name string `json:"name"`
	// Roles the machine holds.
	Roles []Role `json:"roles"`
	// Address on the network named by Network (the admin network by default).
	// Required but for provider k3d, where Docker assigns it.
	Address string `json:"address"`
	// Network names the network Address lives on; default the admin network,
	// or the Internet network for a node whose only role is vps.
	Network string `json:"network,omitempty"`
	// Addresses are the machine's addresses on the rack's other networks
	// (seed 000: its storage and internode VLANs), one per network.
	Addresses []NodeAddress `json:"addresses,omitempty"`
	// Arch is the architecture of the machine's userland as Kubernetes
	// names it (amd64, arm64, arm; uname's x86_64, aarch64, armv7l are
	// taken and rewritten): what its kubelet reports. A Pi running 32-bit
	// Raspberry Pi OS on a 64-bit kernel is arm.
	Arch   string            `json:"arch,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	Taints []Taint           `json:"taints,omitempty"`
	// SSH overrides the rack's SSH defaults for this machine.
	SSH *SSH `json:"ssh,omitempty"`
	// Power says how the machine is powered on again after the power drill
	// (ssh provider); the drill refuses to start while any machine lacks it.
	Power *Power `json:"power,omitempty"`
}

// Power is how a real machine comes back after it powered off.
type Power struct {
	// Command, run with sh -c on the harness's machine, powers the node on
	// (wakeonlan, ipmitool ... chassis power on). ("on" would be a boolean
	// key in YAML 1.1.)
	Command string `json:"command,omitempty"`
	// Manual: a person powers it on; the harness asks and waits.
	Manual bool `json:"manual,omitempty"`
}

// NodeAddress is a machine's address on one more of the rack's networks.
type NodeAddress struct {
	Network string `json:"network"`
	Address string `json:"address"`
}

// AddressOn is the node's address on the named network, or "" when it has
// none there.
func (n *Node) AddressOn(network string) string {
	if n.Network == network {
		return n.Address
	}
	for _, a := range n.Addresses {
		if a.Network == network {
			return a.Address
		}
	}
	return ""
}

// HasRole reports whether the node holds r.
func (n *Node) HasRole(r Role) bool { return slices.Contains(n.Roles, r) }

// Addr is the parsed Address; the zero Addr when it does not parse (validation
// rejects such files, so callers of a validated rack always get a valid address).
func (n *Node) Addr() netip.Addr {
	a, _ := netip.ParseAddr(n.Address)
	return a
}

// Taint is a Kubernetes node taint.
type Taint struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Effect string `json:"effect"`
}

// KeepsAppsOff says whether the taint keeps untolerating pods, the rack's
// apps among them, off its node (NoSchedule, NoExecute), unlike
// PreferNoSchedule.
func (t Taint) KeepsAppsOff() bool { return t.Effect == "NoSchedule" || t.Effect == "NoExecute" }

func (t Taint) String() string { return fmt.Sprintf("%s=%s:%s", t.Key, t.Value, t.Effect) }

// ControlPlane is the API endpoint and how it is kept available.
type ControlPlane struct {
	// Endpoint is what kubectl and the kubelets talk to: the keepalived VIP (seed
	// 001, 000) or a load balancer's address (seed 004).
	Endpoint Endpoint `json:"endpoint"`
	// TLSSANs must all be in the API server certificate (seed 004's --tls-san).
	// The endpoint host is always required and need not be repeated here.
	TLSSANs    []string    `json:"tlsSANs,omitempty"`
	Keepalived *Keepalived `json:"keepalived,omitempty"`
	HAProxy    *HAProxy    `json:"haproxy,omitempty"`
}

// Endpoint is host and port of the Kubernetes API.
type Endpoint struct {
	Host string `json:"host"`
	Port int    `json:"port,omitempty"`
}

// Keepalived holds the API VIP (Endpoint.Host) by VRRP.
type Keepalived struct {
	VirtualRouterID int    `json:"virtualRouterID,omitempty"`
	Interface       string `json:"interface,omitempty"`
	// Members are the nodes running keepalived; the highest priority is the MASTER.
	Members []KeepalivedMember `json:"members"`
}

// KeepalivedMember is one VRRP instance.
type KeepalivedMember struct {
	Node     string `json:"node"`
	Priority int    `json:"priority"`
}

// Master is the member with the highest priority: the one that must hold the VIP.
func (k *Keepalived) Master() string {
	best := KeepalivedMember{Priority: -1}
	for _, m := range k.Members {
		if m.Priority > best.Priority {
			best = m
		}
	}
	return best.Node
}

// HAProxy balances TCP 6443 over the servers.
type HAProxy struct {
	// Nodes running HAProxy; default the keepalived members.
	Nodes     []string `json:"nodes,omitempty"`
	StatsPort int      `json:"statsPort,omitempty"`
	// Backends are the servers behind it; default every server node.
	Backends []string `json:"backends,omitempty"`
}

// MetalLB is the service load balancer.
type MetalLB struct {
	Mode string `json:"mode,omitempty"` // layer2 (bgp is not modelled)
	// Pool is a range "first-last" or a CIDR, on the admin network.
	Pool      string `json:"pool"`
	Namespace string `json:"namespace,omitempty"`
}

// Ingress is the HTTP entry point of the rack.
type Ingress struct {
	Controller string `json:"controller"` // traefik, ingress-nginx
	// IP is the LoadBalancer address of the ingress Service, from the MetalLB pool.
	IP string `json:"ip"`
	// DaemonSet: the controller runs on every node (seed 000), so losing a worker
	// does not lose the ingress.
	DaemonSet bool   `json:"daemonSet,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Service   string `json:"service,omitempty"`
	// CertMinValidity is how long the certificates of the Ingresses' TLS
	// secrets must still be valid (conformance fails under it; default 14 days).
	CertMinValidity metav1.Duration `json:"certMinValidity,omitempty"`
}

// TunnelType is how the rack is exposed to the Internet.
type TunnelType string

const (
	TunnelFRP TunnelType = "frp"
	TunnelSSH TunnelType = "ssh" // OpenSSH reverse tunnel: the offline lab's stand-in
)

// Tunnel is the reverse tunnel from a client in the cluster to a public server.
type Tunnel struct {
	Type   TunnelType   `json:"type"`
	Client TunnelClient `json:"client"`
	Server TunnelServer `json:"server"`
	Ports  []TunnelPort `json:"ports"`
	// Target is where forwarded traffic goes; default the ingress IP.
	Target string `json:"target,omitempty"`
}

// TunnelClient is the Deployment keeping the tunnel up (frpc).
type TunnelClient struct {
	Namespace  string `json:"namespace"`
	Deployment string `json:"deployment"`
}

// TunnelServer is the public end (frps).
type TunnelServer struct {
	// Node is the VPS's node name in this rack.
	Node string `json:"node"`
	// PublicAddress is where Internet users connect; default the node's address.
	PublicAddress string `json:"publicAddress,omitempty"`
	DashboardPort int    `json:"dashboardPort,omitempty"`
}

// TunnelPort is one forwarded port.
type TunnelPort struct {
	Name   string `json:"name,omitempty"`
	Public int    `json:"public"`
	Target int    `json:"target"`
}

// Storage is the rack's central NFS storage.
type Storage struct {
	NFS            *NFS           `json:"nfs,omitempty"`
	StorageClasses []StorageClass `json:"storageClasses,omitempty"`
}

// NFS is the NFS server.
type NFS struct {
	// Node is the node serving NFS.
	Node    string   `json:"node"`
	Exports []string `json:"exports"`
	// Network is the network its clients reach it on. Default: a network
	// with purpose storage the node has an address on (seed 000's storage
	// VLAN), else the node's own network.
	Network string `json:"network,omitempty"`
}

// StorageClass is one documented StorageClass.
type StorageClass struct {
	Name          string `json:"name"`
	Provisioner   string `json:"provisioner"`
	Server        string `json:"server,omitempty"`
	Share         string `json:"share,omitempty"`
	ReclaimPolicy string `json:"reclaimPolicy,omitempty"`
	Default       bool   `json:"default,omitempty"`
}

// UPS is the uninterruptible power supply and the shutdown it drives (seed 002).
type UPS struct {
	// Node is the UPS master: the machine the UPS is connected to, which runs
	// the NUT server and upsmon as primary (or, with Commands, the UPS's own
	// software) and halts last.
	Node string `json:"node"`
	// Name is the UPS's name in NUT (ups.conf section); with Commands, the
	// rack's own name for it.
	Name string `json:"name"`
	// Driver is NUT's driver for the UPS (usbhid-ups); none with Commands.
	Driver string `json:"driver,omitempty"`
	// Commands, for a UPS not run by NUT (seed 002's Riello, watched by its
	// vendor's software and the rack's own shutdown script): how rackdrill
	// reads the UPS and forces the shutdown. Without it, NUT runs the UPS.
	Commands *UPSCommands `json:"commands,omitempty"`
	// ShutdownOrder lists stages; the machines of a stage halt together, each
	// stage after the previous one has halted. The UPS master's own node halts
	// last and need not be listed.
	ShutdownOrder [][]string `json:"shutdownOrder"`
	// BatteryBudget is how long the battery lasts: every machine must have halted
	// cleanly before it ends.
	BatteryBudget metav1.Duration `json:"batteryBudget"`
	// MinCharge is the battery charge (percent) below which conformance fails.
	MinCharge int `json:"minCharge,omitempty"`
}

// UPSCommands read and drive a UPS that NUT does not run. Both run with sh -c
// on the UPS master.
type UPSCommands struct {
	// Status prints the UPS's state as NUT's upsc does, one "variable: value"
	// per line: ups.status (OL online, OB on battery, LB low battery) and
	// battery.charge (percent). Conformance reads it.
	Status string `json:"status"`
	// ForcedShutdown begins the rack's shutdown now, as the mains failing
	// would (the script the UPS's software runs then). The power drill of a
	// real rack runs it.
	ForcedShutdown string `json:"forcedShutdown"`
}

// NUT says whether NUT runs the UPS (upsd, upsc, upsmon on its master).
func (u *UPS) NUT() bool { return u.Commands == nil }

// SSH is how the harness reaches a machine of a real rack.
type SSH struct {
	User         string `json:"user,omitempty"`
	Port         int    `json:"port,omitempty"`
	IdentityFile string `json:"identityFile,omitempty"`
	Agent        bool   `json:"agent,omitempty"`
	Sudo         bool   `json:"sudo,omitempty"`
	KnownHosts   string `json:"knownHosts,omitempty"`
	// DeadMan is the delay of the dead-man timer put on a machine before a
	// fault goes in (systemd-run --on-active): while the harness lives it
	// re-arms the timer; if the harness disappears the timer reverts the
	// fault by itself within this delay. Default 2m.
	DeadMan metav1.Duration `json:"deadMan,omitempty"`
	// DeadManTimer is how the dead-man timer runs on the machine:
	// "systemd-run" (the default: a transient systemd timer) or "shell" (a
	// detached `sleep` in a session of its own, for a machine without
	// systemd, such as a NAS appliance). The plan says which.
	DeadManTimer DeadManTimer `json:"deadManTimer,omitempty"`
	// Services are the commands that take a machine's services down and up
	// again; what is left out takes the defaults of the distribution.
	Services *Services `json:"services,omitempty"`
}

// DeadManTimer is how a machine's dead-man timer runs.
type DeadManTimer string

// The dead-man timers.
const (
	TimerSystemdRun DeadManTimer = "systemd-run"
	TimerShell      DeadManTimer = "shell"
)

// Services are the shell commands (run with sh -c, through sudo when the
// inventory says so) that faults run on a real machine, per service.
type Services struct {
	// Server: a control-plane machine's Kubernetes (kubelet and the static
	// pods of etcd and kube-apiserver; k3s).
	Server *ServiceCommands `json:"server,omitempty"`
	// Worker: a worker's Kubernetes (kubelet and its pods; k3s-agent).
	Worker     *ServiceCommands `json:"worker,omitempty"`
	Keepalived *ServiceCommands `json:"keepalived,omitempty"`
	HAProxy    *ServiceCommands `json:"haproxy,omitempty"`
	// NFS cuts the NAS's NFS service off (by default with the harness's own
	// iptables chain, so that nothing else on the NAS is touched).
	NFS *ServiceCommands `json:"nfs,omitempty"`
	// TunnelServer: frps (or sshd) on the VPS.
	TunnelServer *ServiceCommands `json:"tunnelServer,omitempty"`
	// UPS: Stop forces the shutdown of the UPS master (upsmon -c fsd).
	UPS *ServiceCommands `json:"ups,omitempty"`
}

// ServiceCommands take a service down (Stop) and bring it back (Start). Start
// must be idempotent: it is run again by the dead-man timer and by
// `rackdrill recover`.
type ServiceCommands struct {
	Stop  string `json:"stop"`
	Start string `json:"start"`
}

// Probes configure how the rack's paths are sampled.
type Probes struct {
	Interval metav1.Duration `json:"interval,omitempty"`
	Timeout  metav1.Duration `json:"timeout,omitempty"`
	// Host is the Host header of the demo app's Ingress.
	Host string `json:"host,omitempty"`
	// Namespace holds the probe workloads.
	Namespace string `json:"namespace,omitempty"`
	// Image is the agent image in the rack's own registry, which the nodes
	// pull. Empty: on a real rack (provider ssh) rackdrill builds the agent
	// for the nodes' architectures and loads it into each node's containerd
	// over SSH.
	Image string `json:"image,omitempty"`
}
