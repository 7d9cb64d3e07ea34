package k3d

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"rackdrill.dev/rackdrill/harness/cluster/containers"
	"rackdrill.dev/rackdrill/harness/topology"
)

// The k3d containers carry the lab's own labels (containers.LabelRack and the
// others), so `rackdrill down` and status find them as they find the lab's.
const (
	// LoadBalancerNode is the node name of k3d's serverlb container: the API
	// load balancer the cp-lb-lost fault stops.
	LoadBalancerNode = "serverlb"
)

// ImageRepo is K3s's image; the tag is the topology's version with "+" as "-".
const ImageRepo = "docker.io/rancher/k3s"

// CreateTimeout bounds `k3d cluster create` (options.k3d.timeout).
const CreateTimeout = "6m0s"

// NodeFilter is the k3d node filter of a topology node: servers are
// server:0.. and workers agent:0.., each in topology order.
func NodeFilter(r *topology.Rack, node string) (string, bool) {
	var servers, agents int
	for _, n := range r.Spec.Nodes {
		switch {
		case n.HasRole(topology.RoleServer):
			if n.Name == node {
				return "server:" + strconv.Itoa(servers), true
			}
			servers++
		case n.HasRole(topology.RoleWorker):
			if n.Name == node {
				return "agent:" + strconv.Itoa(agents), true
			}
			agents++
		}
	}
	return "", false
}

// Config is the k3d config of rack r: its servers (K3s with embedded etcd when
// there are several) and workers as agents, the API published by k3d's load
// balancer on the documented endpoint, every documented TLS SAN in the API
// certificate, servicelb off when MetalLB serves LoadBalancer Services, K3s's
// Traefik off when another ingress controller is documented, the documented
// labels and taints, and the user's kubeconfig left alone.
func Config(r *topology.Rack) (*SimpleConfig, error) {
	if d := r.Spec.Kubernetes.Distribution; d != topology.DistributionK3s {
		return nil, fmt.Errorf("spec.kubernetes.distribution: k3d runs K3s, the topology says %s", d)
	}
	c := &SimpleConfig{APIVersion: APIVersion, Kind: Kind, Metadata: ObjectMeta{Name: r.Metadata.Name},
		Image: ImageRepo + ":" + strings.ReplaceAll(r.Spec.Kubernetes.Version, "+", "-")}
	for _, n := range r.Spec.Nodes {
		switch {
		case n.HasRole(topology.RoleServer):
			c.Servers++
		case n.HasRole(topology.RoleWorker):
			c.Agents++
		}
	}
	if c.Servers == 0 {
		return nil, fmt.Errorf("spec.nodes: no node has role server")
	}
	if admin := r.AdminNetwork(); admin != nil {
		c.Network = "k3d-" + r.Metadata.Name
		c.Subnet = admin.CIDR
	}
	ep := r.Spec.ControlPlane.Endpoint
	c.KubeAPI = ExposeAPI{HostIP: ep.Host, HostPort: strconv.Itoa(ep.Port)}
	servers := []string{"server:*"}
	k3s := &c.Options.K3s
	for _, san := range append([]string{ep.Host}, r.Spec.ControlPlane.TLSSANs...) {
		k3s.ExtraArgs = append(k3s.ExtraArgs, ArgWithFilter{Arg: "--tls-san=" + san, NodeFilters: servers})
	}
	if r.Spec.MetalLB != nil {
		k3s.ExtraArgs = append(k3s.ExtraArgs, ArgWithFilter{Arg: "--disable=servicelb", NodeFilters: servers})
	}
	if in := r.Spec.Ingress; in != nil && in.Controller != "traefik" {
		k3s.ExtraArgs = append(k3s.ExtraArgs, ArgWithFilter{Arg: "--disable=traefik", NodeFilters: servers})
	}
	if k := r.Spec.Kubernetes; k.PodSubnet != "" {
		k3s.ExtraArgs = append(k3s.ExtraArgs,
			ArgWithFilter{Arg: "--cluster-cidr=" + k.PodSubnet, NodeFilters: servers},
			ArgWithFilter{Arg: "--service-cidr=" + k.ServiceSubnet, NodeFilters: servers})
	}
	for _, n := range r.Spec.Nodes {
		filter, ok := NodeFilter(r, n.Name)
		if !ok {
			continue
		}
		for _, k := range slices.Sorted(maps.Keys(n.Labels)) {
			k3s.NodeLabels = append(k3s.NodeLabels, LabelWithFilter{Label: k + "=" + n.Labels[k], NodeFilters: []string{filter}})
		}
		for _, t := range n.Taints {
			taint := t.Key
			if t.Value != "" {
				taint += "=" + t.Value
			}
			k3s.ExtraArgs = append(k3s.ExtraArgs, ArgWithFilter{Arg: "--node-taint=" + taint + ":" + t.Effect, NodeFilters: []string{filter}})
		}
	}
	c.Options.K3d = K3dOptions{Wait: true, Timeout: CreateTimeout}
	// No surprise on the user's machine: the kubeconfig goes into the
	// artifacts folder (k3d kubeconfig get), never into ~/.kube/config.
	c.Options.Kubeconfig = KubeconfigOptions{UpdateDefaultKubeconfig: false, SwitchCurrentContext: false}
	// Every container carries the rack's labels, as the lab's machines do:
	// rackdrill finds, faults and removes them by label.
	rt := &c.Options.Runtime
	rt.Labels = []LabelWithFilter{{Label: containers.LabelRack + "=" + r.Metadata.Name, NodeFilters: []string{"all"}}}
	for _, n := range r.Spec.Nodes {
		if filter, ok := NodeFilter(r, n.Name); ok {
			role := "server"
			if strings.HasPrefix(filter, "agent:") {
				role = "worker"
			}
			rt.Labels = append(rt.Labels,
				LabelWithFilter{Label: containers.LabelNode + "=" + n.Name, NodeFilters: []string{filter}},
				LabelWithFilter{Label: containers.LabelRoles + "=" + role, NodeFilters: []string{filter}})
		}
	}
	rt.Labels = append(rt.Labels,
		LabelWithFilter{Label: containers.LabelNode + "=" + LoadBalancerNode, NodeFilters: []string{"loadbalancer"}},
		LabelWithFilter{Label: containers.LabelRoles + "=loadbalancer", NodeFilters: []string{"loadbalancer"}})
	return c, nil
}
