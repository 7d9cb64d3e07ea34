package fault_test

import (
	"strings"
	"testing"

	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/topology"
)

func load(t *testing.T, path string) *topology.Rack {
	t.Helper()
	r, _, err := topology.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPlanLab(t *testing.T) {
	r := load(t, "../../kind-configs/lab.yaml")
	want := map[string]string{
		"server-kill-1":      "server-1,server-2,server-3",
		"server-kill-2":      "server-1,server-2,server-3",
		"lb-master-lost":     "lb-1",
		"cp-lb-lost":         "lb-1,lb-2",
		"metallb-dropped":    "metallb-system/controller,metallb-system/speaker",
		"tunnel-client-cut":  "rackdrill-tunnel/tunnel-client",
		"tunnel-server-lost": "vps-1",
		"nfs-lost":           "nas-1",
		"worker-lost":        "worker-1",
		"ups-power-loss":     "server-1,worker-1,worker-2,server-2,server-3,lb-1,lb-2,nas-1",
	}
	for _, name := range fault.Names {
		pl, err := fault.PlanFor(name, r, topology.ProviderContainers)
		if err != nil {
			t.Fatal(err)
		}
		if !pl.Applicable {
			t.Errorf("%s not applicable on the lab: %s", name, pl.Why)
		}
		if got := strings.Join(pl.Targets, ","); got != want[name] {
			t.Errorf("%s targets %s, want %s", name, got, want[name])
		}
		if len(pl.Inject) == 0 || len(pl.Revert) == 0 {
			t.Errorf("%s has no inject or revert steps", name)
		}
	}
}

func TestPlanNotApplicable(t *testing.T) {
	k3d := load(t, "../../kind-configs/k3d-ha.yaml")
	for _, name := range []string{"lb-master-lost", "ups-power-loss"} {
		pl, _ := fault.PlanFor(name, k3d, topology.ProviderK3d)
		if pl.Applicable || pl.Why == "" {
			t.Errorf("k3d %s: applicable=%v why=%q", name, pl.Applicable, pl.Why)
		}
	}
	pl, _ := fault.PlanFor("cp-lb-lost", k3d, topology.ProviderK3d)
	if !pl.Applicable || pl.Targets[0] != "k3d serverlb" {
		t.Errorf("k3d cp-lb-lost: %+v", pl)
	}
	minimal := load(t, "../topology/testdata/valid-minimal.yaml")
	for _, name := range fault.Names {
		pl, _ := fault.PlanFor(name, minimal, topology.ProviderSSH)
		if pl.Applicable {
			t.Errorf("one-server rack: %s should not be applicable", name)
		}
	}
	if _, err := fault.PlanFor("meteor-strike", minimal, topology.ProviderSSH); err == nil {
		t.Error("unknown fault accepted")
	}
}

func TestPlanRealRackUsesServicesNotPower(t *testing.T) {
	r := load(t, "../../kind-configs/rack-seed001.example.yaml")
	pl, _ := fault.PlanFor("cp-lb-lost", r, topology.ProviderSSH)
	if strings.Join(pl.Targets, ",") != "n100-004,nas-001" {
		t.Errorf("targets %v", pl.Targets)
	}
	for _, s := range pl.Inject {
		if !strings.Contains(s.Action, "systemctl stop keepalived haproxy") {
			t.Errorf("on a real rack the LB layer is stopped by its services: %+v", s)
		}
	}
	nfs, _ := fault.PlanFor("nfs-lost", r, topology.ProviderSSH)
	if !strings.Contains(nfs.Inject[0].Action, "RACKDRILL-NFS") {
		t.Errorf("nfs-lost on a real rack: %+v", nfs.Inject)
	}
	kill, _ := fault.PlanFor("server-kill-1", r, topology.ProviderSSH)
	if !strings.Contains(kill.Inject[0].Action, "systemctl kill -s KILL kubelet") {
		t.Errorf("server kill on kubeadm: %+v", kill.Inject)
	}
}
