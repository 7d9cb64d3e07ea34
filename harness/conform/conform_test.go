package conform

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/topology"
)

func TestNormalizeRef(t *testing.T) {
	for in, want := range map[string]string{
		"traefik:v3.6.12":                         "docker.io/library/traefik:v3.6.12",
		"nginx":                                   "docker.io/library/nginx:latest",
		"rancher/k3s:v1.33.4-k3s1":                "docker.io/rancher/k3s:v1.33.4-k3s1",
		"quay.io/metallb/speaker:v0.15.2":         "quay.io/metallb/speaker:v0.15.2",
		"registry.k8s.io/coredns/coredns:v1.12.0": "registry.k8s.io/coredns/coredns:v1.12.0",
		"localhost:5000/app":                      "localhost:5000/app:latest",
		"ghcr.io/x/y@sha256:0123":                 "ghcr.io/x/y@sha256:0123",
		"rackdrill.dev/agent:latest":              "rackdrill.dev/agent:latest",
	} {
		if got := normalizeRef(in); got != want {
			t.Errorf("normalizeRef(%q) = %q, want %q", in, got, want)
		}
	}
}

// fixedOutput is a machine whose only command prints what containerd's ctr
// printed on a lab node and on a K3s arm64 node: the parser is tested on the
// real format, which a running node cannot be made to vary here.
type fixedOutput string

func (f fixedOutput) Command(ctx context.Context, name string, args ...string) exec.Cmd {
	return exec.Local{}.Command(ctx, "printf", "%s", string(f))
}

func TestNodeImages(t *testing.T) {
	out := strings.Join([]string{
		"REF                                  TYPE                                                      DIGEST                                                                  SIZE      PLATFORMS                            LABELS",
		"docker.io/library/traefik:v3.6.12    application/vnd.docker.distribution.manifest.v2+json      sha256:7f3974c9b6c0c11d5d2de9923dead2edd4b515bbcba7ad0b38765694f8d37382 169.7 MiB linux/amd64                          io.cri-containerd.image=managed",
		"docker.io/rancher/mirrored-pause:3.6 application/vnd.docker.distribution.manifest.list.v2+json sha256:74c4244427b7312c5b901fe0f67cbc53683d06f4f24c6faee65d4182bf0fa893 685.3 KiB linux/amd64,linux/arm/v7,linux/arm64 io.cri-containerd.image=managed",
		"sha256:6bfc92235947aa3937d22133bcb8a34f6070351abf132b2133cc7a7cd78fb935 application/vnd.docker.distribution.manifest.v2+json sha256:6bfc 50.0 MiB linux/amd64 io.cri-containerd.image=managed",
	}, "\n")
	got, err := nodeImages(context.Background(), fixedOutput(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d images %v, want 2 (digest refs skipped)", len(got), got)
	}
	if a := strings.Join(got["docker.io/rancher/mirrored-pause:3.6"], ","); a != "amd64,arm,arm64" {
		t.Errorf("pause platforms = %s", a)
	}
	if a := strings.Join(got["docker.io/library/traefik:v3.6.12"], ","); a != "amd64" {
		t.Errorf("traefik platforms = %s", a)
	}
}

func TestChecksNameTheirField(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range Checks() {
		if c.Name == "" || c.Family == "" || !strings.HasPrefix(c.Field, "spec.") || c.Run == nil {
			t.Errorf("check %+v: every check needs a name, a family, the spec field it checks and a Run", c)
		}
		if seen[c.Name] {
			t.Errorf("two checks named %q: specs and JUnit testcases must be unique", c.Name)
		}
		seen[c.Name] = true
	}
}

func TestSkipWhenTheRackLacksThePart(t *testing.T) {
	r := &topology.Rack{}
	target := &Target{Rack: r}
	for _, c := range Checks() {
		if c.Family == "ups" || c.Family == "tunnel" || c.Family == "storage" || c.Field == "spec.metallb.pool" {
			if c.Skip == nil || c.Skip(target) == "" {
				t.Errorf("check %q runs on a rack without the part it checks; it must say why it is skipped", c.Name)
			}
		}
	}
}

// K3s's servers with --cluster-init run etcd as kubeadm's do: its check runs
// on a K3s rack of several servers (it was skipped on every K3s rack, which
// left the embedded etcd unchecked); a lone K3s server may run SQLite.
func TestEtcdCheckedOnK3s(t *testing.T) {
	var check Check
	for _, c := range Checks() {
		if strings.HasPrefix(c.Name, "etcd has one started") {
			check = c
		}
	}
	if check.Skip == nil {
		t.Fatal("no etcd check, or one without a Skip")
	}
	rack := func(d topology.Distribution, servers int) *Target {
		r := &topology.Rack{}
		r.Spec.Kubernetes.Distribution = d
		for i := range servers {
			r.Spec.Nodes = append(r.Spec.Nodes, topology.Node{Name: fmt.Sprintf("server-%d", i+1), Roles: []topology.Role{topology.RoleServer}})
		}
		return &Target{Rack: r}
	}
	for _, c := range []struct {
		d       topology.Distribution
		servers int
		skip    bool
	}{{topology.DistributionK3s, 3, false}, {topology.DistributionKubeadm, 3, false}, {topology.DistributionKubeadm, 1, false}, {topology.DistributionK3s, 1, true}} {
		if why := check.Skip(rack(c.d, c.servers)); (why != "") != c.skip {
			t.Errorf("%s rack of %d servers: skip %q, want skipped %v", c.d, c.servers, why, c.skip)
		}
	}
}
