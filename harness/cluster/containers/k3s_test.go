package containers

import (
	"context"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/topology"
)

// k3sLab is the K3s lab's topology, as a user runs it.
func k3sLab(t *testing.T) (*topology.Rack, *upRun) {
	t.Helper()
	r, _, err := topology.Load("../../../kind-configs/lab-k3s.yaml")
	if err != nil {
		t.Fatal(err)
	}
	u := &upRun{p: NewProvider(r.Metadata.Name), r: r, nodes: map[string]*node{}, cert: "0123456789abcdef"}
	for _, tn := range r.Spec.Nodes {
		u.nodes[tn.Name] = &node{name: tn.Name, roles: tn.Roles}
	}
	return r, u
}

// What K3s reads from /etc/rancher/k3s/config.yaml makes the rack: the first
// server starts etcd, the others join it, the agents join through the load
// balancer, every server's certificate is valid for the endpoint, and the
// add-ons the lab cannot pull are off.
func TestK3sConfig(t *testing.T) {
	r, u := k3sLab(t)
	config := func(node, server string) map[string]any {
		t.Helper()
		out, err := u.k3sConfig(u.nodes[node], server)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := yaml.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("%s's config.yaml is not YAML: %v\n%s", node, err, out)
		}
		return m
	}
	first := config("server-1", "")
	if first["cluster-init"] != true || first["server"] != nil {
		t.Errorf("server-1: cluster-init %v, server %v; want cluster-init true and no server", first["cluster-init"], first["server"])
	}
	second := config("server-2", "https://172.29.60.21:6443")
	if second["cluster-init"] != nil || second["server"] != "https://172.29.60.21:6443" {
		t.Errorf("server-2: cluster-init %v, server %v; want the first server's URL", second["cluster-init"], second["server"])
	}
	for name, m := range map[string]map[string]any{"server-1": first, "server-2": second} {
		sans, _ := m["tls-san"].([]any)
		if !slices.Contains(sans, any("172.29.60.100")) || !slices.Contains(sans, any("api.lab-k3s.rackdrill.local")) {
			t.Errorf("%s: tls-san %v; want the endpoint and spec.controlPlane.tlsSANs", name, sans)
		}
		disabled, _ := m["disable"].([]any)
		for _, d := range []string{"servicelb", "traefik", "coredns"} {
			if !slices.Contains(disabled, any(d)) {
				t.Errorf("%s: disable %v lacks %s", name, disabled, d)
			}
		}
		if m["cluster-dns"] != "10.96.0.10" || m["service-cidr"] != r.Spec.Kubernetes.ServiceSubnet || m["cluster-cidr"] != r.Spec.Kubernetes.PodSubnet {
			t.Errorf("%s: cluster-dns %v, service-cidr %v, cluster-cidr %v", name, m["cluster-dns"], m["service-cidr"], m["cluster-cidr"])
		}
		if m["token"] != "0123456789abcdef" || m["node-name"] != name {
			t.Errorf("%s: token %v, node-name %v", name, m["token"], m["node-name"])
		}
	}
	agent := config("agent-1", r.APIServerURL())
	if agent["server"] != "https://172.29.60.100:6443" || agent["node-ip"] != "172.29.60.31" {
		t.Errorf("agent-1: server %v, node-ip %v; want the endpoint and its own address", agent["server"], agent["node-ip"])
	}
	for _, serverOnly := range []string{"tls-san", "disable", "cluster-init", "cluster-cidr", "write-kubeconfig-mode"} {
		if _, ok := agent[serverOnly]; ok {
			t.Errorf("agent-1's config has %s, a server flag K3s's agent refuses", serverOnly)
		}
	}
	if agent["pause-image"] != "registry.k8s.io/pause:"+lab.DefaultRelease.Pause {
		t.Errorf("agent-1: pause-image %v, want the node image's preloaded pause", agent["pause-image"])
	}

	// A tainted node keeps its taint and labels under K3s.
	tn := r.Node("agent-2")
	tn.Taints = []topology.Taint{{Key: "storage", Value: "only", Effect: "NoSchedule"}}
	tn.Labels = map[string]string{"disk": "ssd"}
	tainted := config("agent-2", r.APIServerURL())
	if taints, _ := tainted["node-taint"].([]any); !slices.Equal(taints, []any{"storage=only:NoSchedule"}) {
		t.Errorf("agent-2: node-taint %v", tainted["node-taint"])
	}
	if labels, _ := tainted["node-label"].([]any); !slices.Equal(labels, []any{"disk=ssd"}) {
		t.Errorf("agent-2: node-label %v", tainted["node-label"])
	}
}

// K3s's API server refuses anonymous requests, /readyz included: an HTTP check
// would mark every server down. A K3s rack's HAProxy checks the port, as seed
// 004's does; a kubeadm rack's checks /readyz.
func TestHAProxyCheckFollowsTheDistribution(t *testing.T) {
	for _, k3s := range []bool{true, false} {
		cfg, err := tmpl.Render("haproxy.cfg.tmpl", map[string]any{"Node": "lb", "Rack": "r", "Port": 6443, "StatsPort": 8404,
			"Backends": []struct{ Name, Address string }{{"server-1", "10.0.0.1"}}, "TCPCheck": k3s})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(cfg, "httpchk"); got == k3s {
			t.Errorf("TCPCheck=%v: httpchk present %v:\n%s", k3s, got, cfg)
		}
		if !strings.Contains(cfg, "server server-1 10.0.0.1:6443 check") {
			t.Errorf("TCPCheck=%v: server-1 not checked:\n%s", k3s, cfg)
		}
	}
}

// The lab builds one K3s release, from source: another is refused before
// anything is made, naming the field.
func TestK3sLabRefusesAnotherRelease(t *testing.T) {
	r, u := k3sLab(t)
	r.Spec.Kubernetes.Version = "v1.33.5+k3s1"
	err := u.k3sImage(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "spec.kubernetes.version v1.33.5+k3s1") || !strings.Contains(err.Error(), lab.K3sVersion) {
		t.Fatalf("k3sImage: %v; want a refusal naming the version and %s", err, lab.K3sVersion)
	}
}

func TestClusterDNS(t *testing.T) {
	for in, want := range map[string]string{"10.96.0.0/12": "10.96.0.10", "10.43.0.0/16": "10.43.0.10"} {
		if got, err := clusterDNS(in); err != nil || got != want {
			t.Errorf("clusterDNS(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
	if _, err := clusterDNS("10.96.0.0"); err == nil || !strings.Contains(err.Error(), "spec.kubernetes.serviceSubnet") {
		t.Errorf("clusterDNS of a bad range: %v", err)
	}
}
