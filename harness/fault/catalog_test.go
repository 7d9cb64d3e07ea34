package fault_test

import (
	"slices"
	"time"

	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	if !pl.Applicable || pl.Targets[0] != "serverlb" {
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
	// Each machine: its dead-man timer first, then keepalived and haproxy
	// stopped; the revert starts both and then cancels the timer.
	var inject, revert []string
	for _, s := range pl.Inject {
		inject = append(inject, s.Where+": "+strings.SplitN(s.Action, " (", 2)[0])
	}
	for _, s := range pl.Revert {
		revert = append(revert, s.Where+": "+s.Action)
	}
	wantInject := []string{
		"n100-004: dead-man timer", "n100-004: sh -c 'systemctl stop keepalived'", "n100-004: sh -c 'systemctl stop haproxy'",
		"nas-001: dead-man timer", "nas-001: sh -c 'systemctl stop keepalived'", "nas-001: sh -c 'systemctl stop haproxy'",
	}
	wantRevert := []string{
		"nas-001: sh -c 'systemctl start haproxy'", "nas-001: sh -c 'systemctl start keepalived'",
		"n100-004: sh -c 'systemctl start haproxy'", "n100-004: sh -c 'systemctl start keepalived'",
		"n100-004: cancel the dead-man timer", "nas-001: cancel the dead-man timer",
	}
	if !slices.Equal(inject, wantInject) {
		t.Errorf("cp-lb-lost inject:\n got %q\nwant %q", inject, wantInject)
	}
	if !slices.Equal(revert, wantRevert) {
		t.Errorf("cp-lb-lost revert:\n got %q\nwant %q", revert, wantRevert)
	}
	nfs, _ := fault.PlanFor("nfs-lost", r, topology.ProviderSSH)
	if !strings.Contains(nfs.Inject[1].Action, "iptables -I INPUT -j RACKDRILL-NFS") || !strings.Contains(nfs.Revert[0].Action, "iptables -X RACKDRILL-NFS") {
		t.Errorf("nfs-lost on a real rack blocks NFS with the harness's own chain: %+v", nfs)
	}
	kill, _ := fault.PlanFor("server-kill-1", r, topology.ProviderSSH)
	if !strings.Contains(kill.Inject[1].Action, "systemctl kill --signal=SIGKILL kubelet") || kill.LosesQuorum {
		t.Errorf("server kill on kubeadm: %+v", kill)
	}
	if two, _ := fault.PlanFor("server-kill-2", r, topology.ProviderSSH); !two.LosesQuorum {
		t.Errorf("killing 2 of 3 servers loses etcd's quorum: %+v", two)
	}
	if ups, _ := fault.PlanFor("ups-power-loss", r, topology.ProviderSSH); ups.Applicable && !ups.Power {
		t.Errorf("the UPS drill powers machines off: %+v", ups)
	}
}

func TestPlanRealRackServiceOverrides(t *testing.T) {
	r := load(t, "../../kind-configs/rack-seed001.example.yaml")
	r.Spec.Kubernetes.Distribution = topology.DistributionK3s
	r.Spec.SSH = &topology.SSH{Services: &topology.Services{Keepalived: &topology.ServiceCommands{Stop: "rc-service keepalived stop"}}}
	nas := r.Node("nas-001")
	nas.SSH = &topology.SSH{DeadMan: metav1.Duration{Duration: 45 * time.Second},
		Services: &topology.Services{Keepalived: &topology.ServiceCommands{Start: "rc-service keepalived start"}}}
	if c := r.ServiceCommands(topology.ServiceKeepalived, "nas-001"); c.Stop != "rc-service keepalived stop" || c.Start != "rc-service keepalived start" {
		t.Errorf("node over rack over defaults, field by field: %+v", c)
	}
	if c := r.ServiceCommands(topology.ServiceKeepalived, "n100-004"); c.Start != "systemctl start keepalived" {
		t.Errorf("a field the rack leaves out keeps its default: %+v", c)
	}
	if c := r.ServiceCommands(topology.ServiceServer, "n100-001"); c.Stop != "/usr/local/bin/k3s-killall.sh" || c.Start != "systemctl start k3s" {
		t.Errorf("K3s server: %+v", c)
	}
	if c := r.ServiceCommands(topology.ServiceWorker, "n100-001"); c.Start != "systemctl start k3s-agent" {
		t.Errorf("K3s agent: %+v", c)
	}
	if r.DeadMan("nas-001") != 45*time.Second || r.DeadMan("n100-004") != topology.DefaultDeadMan {
		t.Errorf("dead-man delays: %s %s", r.DeadMan("nas-001"), r.DeadMan("n100-004"))
	}
}
