package k3d_test

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"rackdrill.dev/rackdrill/harness/cluster/k3d"
	"rackdrill.dev/rackdrill/harness/topology"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// decodeStrict reads a k3d config as k3d would, refusing any field the
// documented v1alpha5 schema does not have.
func decodeStrict(t *testing.T, data []byte) (*k3d.SimpleConfig, error) {
	t.Helper()
	var c k3d.SimpleConfig
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

func TestConfigGolden(t *testing.T) {
	for _, tc := range []struct{ topology, golden string }{
		{"../../../kind-configs/k3d-ha.yaml", "k3d-ha.golden.yaml"},
		{"testdata/k3d-nginx-taints.yaml", "k3d-nginx-taints.golden.yaml"},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			r, _, err := topology.Load(tc.topology)
			if err != nil {
				t.Fatal(err)
			}
			c, err := k3d.Config(r)
			if err != nil {
				t.Fatal(err)
			}
			got, err := yaml.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("config of %s differs from %s:\n%s", tc.topology, path, got)
			}
			back, err := decodeStrict(t, want)
			if err != nil {
				t.Fatalf("%s does not decode strictly as k3d.io/v1alpha5: %v", path, err)
			}
			if back.APIVersion != "k3d.io/v1alpha5" || back.Kind != "Simple" || back.Servers != 3 || back.Agents != 2 {
				t.Errorf("%s: %+v", path, back)
			}
		})
	}
}

func TestConfigPromises(t *testing.T) {
	r, _, err := topology.Load("../../../kind-configs/k3d-ha.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := k3d.Config(r)
	if err != nil {
		t.Fatal(err)
	}
	args := map[string][]string{}
	for _, a := range c.Options.K3s.ExtraArgs {
		args[a.Arg] = a.NodeFilters
	}
	for _, want := range []string{"--tls-san=127.0.0.1", "--tls-san=k3d-rackdrill-k3d-serverlb", "--disable=servicelb"} {
		if f := args[want]; len(f) != 1 || f[0] != "server:*" {
			t.Errorf("%s on every server: %v", want, f)
		}
	}
	if _, off := args["--disable=traefik"]; off {
		t.Error("the topology's ingress is K3s's Traefik: it must stay")
	}
	nginx, _, err := topology.Load("testdata/k3d-nginx-taints.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cn, _ := k3d.Config(nginx)
	var taint, traefikOff bool
	for _, a := range cn.Options.K3s.ExtraArgs {
		taint = taint || a.Arg == "--node-taint=storage=only:NoSchedule" && a.NodeFilters[0] == "agent:1"
		traefikOff = traefikOff || a.Arg == "--disable=traefik"
	}
	if !taint || !traefikOff || len(cn.Options.K3s.NodeLabels) != 2 || cn.Options.K3s.NodeLabels[0].NodeFilters[0] != "agent:0" {
		t.Errorf("another ingress turns Traefik off; taints and labels go to their agent: %+v", cn.Options.K3s)
	}
	if c.KubeAPI.HostIP != "127.0.0.1" || c.KubeAPI.HostPort != "6550" {
		t.Errorf("API published on %+v, want the topology's endpoint 127.0.0.1:6550", c.KubeAPI)
	}
	if c.Options.Kubeconfig.UpdateDefaultKubeconfig || c.Options.Kubeconfig.SwitchCurrentContext {
		t.Error("the user's ~/.kube/config must be left alone")
	}
	// Every container carries the rack label (rackdrill down), and each
	// machine its name and role, as the lab's (faults find them by label).
	labels := map[string]string{}
	for _, l := range c.Options.Runtime.Labels {
		labels[l.Label+"@"+l.NodeFilters[0]] = ""
	}
	for _, want := range []string{"rackdrill.dev/rack=rackdrill-k3d@all", "rackdrill.dev/node=server-2@server:2",
		"rackdrill.dev/roles=worker@agent:1", "rackdrill.dev/node=agent-1@agent:1", "rackdrill.dev/node=serverlb@loadbalancer"} {
		if _, ok := labels[want]; !ok {
			t.Errorf("runtime label %s missing: %v", want, labels)
		}
	}
	kubeadm := *r
	kubeadm.Spec.Kubernetes.Distribution = topology.DistributionKubeadm
	if _, err := k3d.Config(&kubeadm); err == nil || !strings.Contains(err.Error(), "spec.kubernetes.distribution") {
		t.Errorf("a kubeadm rack in k3d: %v", err)
	}
}

// The types follow the documented schema: a config using every documented
// field decodes; a misspelt or unknown field does not.
func TestDecodeStrict(t *testing.T) {
	full, err := os.ReadFile("testdata/documented-fields.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := decodeStrict(t, full)
	if err != nil {
		t.Fatalf("every documented field: %v", err)
	}
	if c.Registries == nil || c.Registries.Create == nil || len(c.Options.Runtime.Ulimits) != 1 || len(c.HostAliases) != 1 {
		t.Errorf("decoded: %+v", c)
	}
	for _, bad := range []string{
		"apiVersion: k3d.io/v1alpha5\nkind: Simple\nagent: 2\n",
		"apiVersion: k3d.io/v1alpha5\nkind: Simple\noptions:\n  k3s:\n    extraArg: []\n",
		"apiVersion: k3d.io/v1alpha5\nkind: Simple\nkubeAPI:\n  hostPrt: \"6550\"\n",
	} {
		if _, err := decodeStrict(t, []byte(bad)); err == nil {
			t.Errorf("decoded a field k3d does not have:\n%s", bad)
		}
	}
}

func TestManifests(t *testing.T) {
	r, _, err := topology.Load("../../../kind-configs/k3d-ha.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ms, err := k3d.Manifests(context.Background(), r, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]string{}
	var names []string
	for _, m := range ms {
		byName[m.Name] = m.YAML
		names = append(names, m.Name)
	}
	if strings.Join(names, ",") != "metallb-native,metallb-pool,csi-nfs,frpc" {
		t.Fatalf("manifests in order: %v", names)
	}
	for name, wants := range map[string][]string{
		"metallb-pool": {"- 172.28.0.240-172.28.0.250"},
		"csi-nfs":      {"provisioner: nfs.csi.k8s.io", `server: "172.28.0.231"`, `share: "/exports"`, "storageclass.kubernetes.io/is-default-class", k3d.CSINFSImage},
		"frpc": {`serverAddr = "172.28.0.230"`, "serverPort = 7000", `auth.token = "s3cret"`, `localIP = "172.28.0.240"`,
			"localPort = 443", "remotePort = 443", "name: frpc\n  namespace: frp", k3d.FRPCImage},
	} {
		for _, want := range wants {
			if !strings.Contains(byName[name], want) {
				t.Errorf("%s lacks %q:\n%s", name, want, byName[name])
			}
		}
	}
	ssh := *r
	tunnel := *r.Spec.Tunnel
	tunnel.Type = topology.TunnelSSH
	ssh.Spec.Tunnel = &tunnel
	if _, err := k3d.Manifests(context.Background(), &ssh, "x"); err == nil || !strings.Contains(err.Error(), "spec.tunnel.type") {
		t.Errorf("an SSH tunnel in k3d: %v", err)
	}
}
