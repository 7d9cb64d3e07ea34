package k3d

// The k3d config file, k3d.io/v1alpha5 kind Simple: rackdrill's own types of
// the documented fields (see doc.go). The YAML keys are the ones k3d reads the
// file with.

// APIVersion and Kind of the config files rackdrill writes.
const (
	APIVersion = "k3d.io/v1alpha5"
	Kind       = "Simple"
)

// SimpleConfig is `k3d cluster create --config`'s file.
type SimpleConfig struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   ObjectMeta `json:"metadata"`
	// Servers and Agents are the node counts (k3d's defaults: 1 and 0). With
	// more than one server k3d starts the first with --cluster-init: K3s's
	// embedded etcd.
	Servers int `json:"servers,omitempty"`
	Agents  int `json:"agents,omitempty"`
	// KubeAPI is where k3d's load balancer publishes the API on the host.
	KubeAPI     ExposeAPI          `json:"kubeAPI,omitempty"`
	Image       string             `json:"image,omitempty"`
	Network     string             `json:"network,omitempty"`
	Subnet      string             `json:"subnet,omitempty"`
	Token       string             `json:"token,omitempty"`
	Volumes     []VolumeWithFilter `json:"volumes,omitempty"`
	Ports       []PortWithFilter   `json:"ports,omitempty"`
	Env         []EnvWithFilter    `json:"env,omitempty"`
	Registries  *Registries        `json:"registries,omitempty"`
	HostAliases []HostAlias        `json:"hostAliases,omitempty"`
	Options     Options            `json:"options,omitempty"`
}

// ObjectMeta names the cluster.
type ObjectMeta struct {
	Name string `json:"name,omitempty"`
}

// ExposeAPI is kubeAPI: host (a name for the kubeconfig), hostIP and hostPort.
type ExposeAPI struct {
	Host     string `json:"host,omitempty"`
	HostIP   string `json:"hostIP,omitempty"`
	HostPort string `json:"hostPort,omitempty"`
}

// VolumeWithFilter is one --volume.
type VolumeWithFilter struct {
	Volume      string   `json:"volume"`
	NodeFilters []string `json:"nodeFilters,omitempty"`
}

// PortWithFilter is one --port.
type PortWithFilter struct {
	Port        string   `json:"port"`
	NodeFilters []string `json:"nodeFilters,omitempty"`
}

// EnvWithFilter is one --env.
type EnvWithFilter struct {
	EnvVar      string   `json:"envVar"`
	NodeFilters []string `json:"nodeFilters,omitempty"`
}

// ArgWithFilter is one --k3s-arg: an argument of the k3s processes the node
// filters select (server:0, server:*, agent:1, all).
type ArgWithFilter struct {
	Arg         string   `json:"arg"`
	NodeFilters []string `json:"nodeFilters,omitempty"`
}

// LabelWithFilter is one --k3s-node-label or --runtime-label.
type LabelWithFilter struct {
	Label       string   `json:"label"`
	NodeFilters []string `json:"nodeFilters,omitempty"`
}

// Registries are the registries the cluster uses or k3d creates.
type Registries struct {
	Use    []string        `json:"use,omitempty"`
	Create *RegistryCreate `json:"create,omitempty"`
	Config string          `json:"config,omitempty"`
}

// RegistryCreate is a registry k3d creates with the cluster.
type RegistryCreate struct {
	Name     string         `json:"name,omitempty"`
	Host     string         `json:"host,omitempty"`
	HostPort string         `json:"hostPort,omitempty"`
	Image    string         `json:"image,omitempty"`
	Proxy    *RegistryProxy `json:"proxy,omitempty"`
	Volumes  []string       `json:"volumes,omitempty"`
}

// RegistryProxy makes a created registry a pull-through cache.
type RegistryProxy struct {
	RemoteURL string `json:"remoteURL,omitempty"`
	Username  string `json:"username,omitempty"`
	Password  string `json:"password,omitempty"`
}

// HostAlias is an /etc/hosts entry of every node.
type HostAlias struct {
	IP        string   `json:"ip"`
	Hostnames []string `json:"hostnames"`
}

// Options are k3d's, k3s's, the kubeconfig's and the container runtime's.
type Options struct {
	K3d        K3dOptions        `json:"k3d,omitempty"`
	K3s        K3sOptions        `json:"k3s,omitempty"`
	Kubeconfig KubeconfigOptions `json:"kubeconfig,omitempty"`
	Runtime    RuntimeOptions    `json:"runtime,omitempty"`
}

// K3dOptions: wait for the nodes, a timeout (a Go duration), the load
// balancer, rollback.
type K3dOptions struct {
	Wait                bool                 `json:"wait,omitempty"`
	Timeout             string               `json:"timeout,omitempty"`
	DisableLoadbalancer bool                 `json:"disableLoadbalancer,omitempty"`
	DisableImageVolume  bool                 `json:"disableImageVolume,omitempty"`
	DisableRollback     bool                 `json:"disableRollback,omitempty"`
	Loadbalancer        *LoadbalancerOptions `json:"loadbalancer,omitempty"`
}

// LoadbalancerOptions override the serverlb's nginx config.
type LoadbalancerOptions struct {
	ConfigOverrides []string `json:"configOverrides,omitempty"`
}

// K3sOptions are the k3s processes' arguments and node labels.
type K3sOptions struct {
	ExtraArgs  []ArgWithFilter   `json:"extraArgs,omitempty"`
	NodeLabels []LabelWithFilter `json:"nodeLabels,omitempty"`
}

// KubeconfigOptions: whether k3d touches the user's ~/.kube/config.
type KubeconfigOptions struct {
	UpdateDefaultKubeconfig bool `json:"updateDefaultKubeconfig"`
	SwitchCurrentContext    bool `json:"switchCurrentContext"`
}

// RuntimeOptions are the node containers' limits and labels.
type RuntimeOptions struct {
	GPURequest    string            `json:"gpuRequest,omitempty"`
	ServersMemory string            `json:"serversMemory,omitempty"`
	AgentsMemory  string            `json:"agentsMemory,omitempty"`
	HostPidMode   bool              `json:"hostPidMode,omitempty"`
	Labels        []LabelWithFilter `json:"labels,omitempty"`
	Ulimits       []Ulimit          `json:"ulimits,omitempty"`
}

// Ulimit is one ulimit of the node containers.
type Ulimit struct {
	Name string `json:"name"`
	Soft int64  `json:"soft"`
	Hard int64  `json:"hard"`
}
