package install_test

import (
	"os"
	"strings"
	"testing"

	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/probe/install"
	"rackdrill.dev/rackdrill/harness/topology"
)

func load(t *testing.T, path string, edit func(string) string) *topology.Rack {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	if edit != nil {
		if s2 := edit(s); s2 == s {
			t.Fatalf("%s: the edit changed nothing", path)
		} else {
			s = s2
		}
	}
	r, _, err := topology.Parse([]byte(s), path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// On a real rack the probe volume is of the documented StorageClass (the
// default one when a class says so); on the lab adopted over SSH, whose pods
// cannot mount NFS, the agents speak NFS themselves, as when the lab deploys
// them.
func TestConfigStorage(t *testing.T) {
	seed := load(t, "../../../kind-configs/rack-seed001.example.yaml", nil)
	wc := install.Config(seed, "img")
	if wc.StorageClass != "nas-001" || wc.NFSServer != "" || wc.Image != "img" || wc.Namespace != "rackdrill-probes" {
		t.Errorf("seed 001: %+v, want StorageClass nas-001", wc)
	}
	def := load(t, "../../../kind-configs/rack-seed001.example.yaml", func(s string) string {
		return strings.Replace(s, "server: 192.168.100.171, reclaimPolicy: Delete}\n      - {name: nas-003",
			"server: 192.168.100.171, reclaimPolicy: Delete, default: true}\n      - {name: nas-003", 1)
	})
	if wc := install.Config(def, "img"); wc.StorageClass != "nas-002" {
		t.Errorf("with nas-002 the default class: StorageClass %q", wc.StorageClass)
	}
	labSSH := load(t, "../../../kind-configs/lab-ssh.yaml", nil)
	if wc := install.Config(labSSH, "img"); wc.StorageClass != "" || wc.NFSServer != "172.29.10.41" || wc.NFSExport != "/srv/nfs/rack" || wc.IngressClass != "traefik" {
		t.Errorf("lab over SSH: %+v, want NFS from user space on 172.29.10.41:/srv/nfs/rack", wc)
	}
	if c := install.IngressClass("ingress-nginx"); c != "nginx" {
		t.Errorf("ingress-nginx's class: %q", c)
	}
}

// The plan says where the image comes from and how it gets to the nodes
// (the distribution's ctr), what is applied, and where the data probe's
// records live.
func TestPlan(t *testing.T) {
	seed := load(t, "../../../kind-configs/rack-seed001.example.yaml", nil)
	plan := strings.Join(install.Plan(seed), "\n")
	for _, want := range []string{
		"image:   rackdrill.dev/probe/agent:<hash>, built on this machine",
		"load:    over SSH on n100-001, n100-002, n100-003, raspberry-001",
		"ctr -n k8s.io images import --platform linux/<arch> -",
		"PersistentVolumeClaim rackdrill-data (64Mi, ReadWriteMany, StorageClass nas-001)",
		"data:    the data probe writes fresh records to the probe volume (StorageClass nas-001) before each drill",
		"`rackdrill probes remove` deletes namespace rackdrill-probes",
	} {
		if !strings.Contains(plan, want) {
			t.Errorf("the plan lacks %q:\n%s", want, plan)
		}
	}
	own := load(t, "../../../kind-configs/rack-seed001.example.yaml", func(s string) string {
		return toK3s(s) + "\n  probes:\n    image: registry.home.arpa/rackdrill/agent:v1\n"
	})
	plan = strings.Join(install.Plan(own), "\n")
	if !strings.Contains(plan, "image:   registry.home.arpa/rackdrill/agent:v1 (spec.probes.image), pulled by the nodes") || strings.Contains(plan, "load:") {
		t.Errorf("with spec.probes.image nothing is loaded over SSH:\n%s", plan)
	}
	k3s := load(t, "../../../kind-configs/rack-seed001.example.yaml", func(s string) string {
		return toK3s(s)
	})
	if plan := strings.Join(install.Plan(k3s), "\n"); !strings.Contains(plan, "k3s ctr -n k8s.io images import") ||
		!strings.Contains(plan, "etcdctl: K3s ships none: over SSH on n100-001, n100-002, n100-003, where none is installed, rackdrill's own") {
		t.Errorf("on K3s the image is loaded with k3s ctr, and etcdctl is a step of the plan:\n%s", plan)
	}
	if strings.Contains(strings.Join(install.Plan(seed), "\n"), "etcdctl") {
		t.Errorf("kubeadm's servers have etcdctl in the etcd pod: nothing is written for it")
	}
}

// A release's binary uses the agent image the release published: nothing is
// built or loaded over SSH.
func TestPlanWithAPublishedAgent(t *testing.T) {
	defer func(old string) { lab.PublishedAgent = old }(lab.PublishedAgent)
	lab.PublishedAgent = "ghcr.io/rackdrill/agent:v0.3.0"
	plan := strings.Join(install.Plan(load(t, "../../../kind-configs/rack-seed001.example.yaml", nil)), "\n")
	if !strings.Contains(plan, "image:   ghcr.io/rackdrill/agent:v0.3.0 (published with this release for every architecture), pulled by the nodes") || strings.Contains(plan, "load:") {
		t.Errorf("with a published agent nothing is built or loaded:\n%s", plan)
	}
}

// Outside a clone, a binary with no version (go build, not go install
// …@version) and no published agent says in its plan how to get one.
func TestPlanWithoutAnAgentSource(t *testing.T) {
	r := load(t, "../../../kind-configs/rack-seed001.example.yaml", nil)
	t.Chdir(t.TempDir())
	plan := strings.Join(install.Plan(r), "\n")
	for _, want := range []string{"image:   none can be had: this rackdrill cannot build the probe agent", "Set spec.probes.image", "go install at a version"} {
		if !strings.Contains(plan, want) {
			t.Errorf("the plan lacks %q:\n%s", want, plan)
		}
	}
	if strings.Contains(plan, "load:") {
		t.Errorf("nothing to load:\n%s", plan)
	}
}

// toK3s makes seed 001's kubeadm rack a K3s one: the distribution and its
// release.
func toK3s(s string) string {
	return strings.Replace(strings.Replace(s, "distribution: kubeadm", "distribution: k3s", 1), "version: v1.32.3", "version: v1.32.3+k3s1", 1)
}
