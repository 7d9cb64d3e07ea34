package promises_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/promises"
	"rackdrill.dev/rackdrill/harness/topology"
)

func documented(t *testing.T) *matrix.Matrix {
	t.Helper()
	m, err := matrix.Load("../../scenarios/impact-matrix.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func derive(t *testing.T, file string, p topology.ProviderName) (*matrix.Matrix, *promises.Derivation) {
	t.Helper()
	r, _, err := topology.Load("../../kind-configs/" + file)
	if err != nil {
		t.Fatal(err)
	}
	if p == "" {
		p = r.Spec.Provider
	}
	m := documented(t)
	d, err := promises.Derive(m, r, p)
	if err != nil {
		t.Fatal(err)
	}
	return m, d
}

func cell(t *testing.T, d *promises.Derivation, fault, probe string) matrix.Cell {
	t.Helper()
	row := d.Matrix.Row(fault)
	if row == nil {
		t.Fatalf("derived matrix has no row %s", fault)
	}
	return row.Cells[probe]
}

func reasons(d *promises.Derivation, fault string) string {
	return strings.Join(d.Row(fault).Reasons, "\n")
}

// The matrix was written for the lab's and seed 001's shape (separate load
// balancers, three tainted servers, the NAS outside the cluster): on them
// the derived matrix is the documented one, cell for cell.
func TestRacksOfTheDocumentsShapeKeepItsPromises(t *testing.T) {
	for _, c := range []struct {
		file string
		p    topology.ProviderName
		na   []string
	}{
		{"lab.yaml", "", nil},
		{"lab-ssh.yaml", "", nil},
		{"rack-seed001.example.yaml", "", []string{"ups-power-loss"}},
	} {
		t.Run(c.file, func(t *testing.T) {
			m, d := derive(t, c.file, c.p)
			if !reflect.DeepEqual(d.Matrix.Rows, m.Rows) {
				for i := range m.Rows {
					if !reflect.DeepEqual(d.Matrix.Rows[i], m.Rows[i]) {
						t.Errorf("%s derived differently:\n got %+v\nwant %+v", m.Rows[i].Fault, d.Matrix.Rows[i], m.Rows[i])
					}
				}
			}
			var na []string
			for _, r := range d.Rows {
				if len(r.Changes) > 0 || len(r.Reasons) > 0 {
					t.Errorf("%s: changes %+v, reasons %q", r.Fault, r.Changes, r.Reasons)
				}
				if r.NotApplicable != "" {
					na = append(na, r.Fault)
				}
			}
			if !slices.Equal(na, c.na) {
				t.Errorf("not applicable %v, want %v", na, c.na)
			}
			if len(d.Unkeepable()) != 0 {
				t.Errorf("unkeepable %+v", d.Unkeepable())
			}
		})
	}
}

// Seed 000: two K3s servers that are also keepalived's members (MASTER
// tartaro), the ingress on the VIP, a tainted storage node in the cluster.
func TestSeed000(t *testing.T) {
	m, d := derive(t, "rack-seed000.example.yaml", topology.ProviderSSH)
	before := documented(t)
	if !reflect.DeepEqual(m, before) {
		t.Fatal("Derive changed the documented matrix")
	}

	// Two etcd members: losing one loses the quorum, so the API is down,
	// whatever the document says of styx.
	if c := cell(t, d, "server-kill-1", "api"); c.During != matrix.Down {
		t.Errorf("server-kill-1 api %s, want down", promises.Describe(c))
	}
	if c := cell(t, d, "server-kill-1", "heal"); c.During != matrix.Down {
		t.Errorf("server-kill-1 heal %s, want down", promises.Describe(c))
	}
	if !slices.Contains(d.Matrix.Row("server-kill-1").Labels, "quorum") {
		t.Errorf("server-kill-1 labels %v lack quorum (the gate for a real rack)", d.Matrix.Row("server-kill-1").Labels)
	}
	if !strings.Contains(reasons(d, "server-kill-1"), "below the quorum of 2") {
		t.Errorf("server-kill-1 reasons: %s", reasons(d, "server-kill-1"))
	}
	var unkeepable []string
	for _, r := range d.Unkeepable() {
		unkeepable = append(unkeepable, r.Fault)
	}
	if !slices.Equal(unkeepable, []string{"server-kill-1", "cp-lb-lost"}) {
		t.Errorf("unkeepable %v, want server-kill-1 and cp-lb-lost", unkeepable)
	}

	// The ingress IP is the VIP: the LAN follows it.
	if c := cell(t, d, "cp-lb-lost", "lan"); c.During != matrix.Down {
		t.Errorf("cp-lb-lost lan %s, want down (the VIP is gone)", promises.Describe(c))
	}
	api := before.Row("lb-master-lost").Cells["api"]
	if c := cell(t, d, "lb-master-lost", "lan"); c.During != matrix.Up || c.Within.Duration < api.Within.Duration {
		t.Errorf("lb-master-lost lan %s, want up within the VIP's failover (%s)", promises.Describe(c), promises.Describe(api))
	}

	// Its one worker is tainted storage=only: no worker runs the apps, so
	// there is no worker to lose.
	if na := d.Row("worker-lost").NotApplicable; !strings.Contains(na, "no worker runs the apps") {
		t.Errorf("worker-lost: %q", na)
	}

	// Over SSH the NFS server's ports are blocked, niflheim stays up: its
	// pods stay.
	if !reflect.DeepEqual(*d.Matrix.Row("nfs-lost"), *before.Row("nfs-lost")) {
		t.Errorf("nfs-lost over ssh derived %+v", *d.Matrix.Row("nfs-lost"))
	}
}

// Under the containers provider a machine goes down whole: the server that is
// keepalived's MASTER takes the VIP's failover with it, the NAS that is a
// worker takes its pods.
func TestWholeMachinesLoseEveryRole(t *testing.T) {
	_, d := derive(t, "rack-seed000.example.yaml", topology.ProviderContainers)
	why := reasons(d, "server-kill-1")
	for _, want := range []string{
		"if the fault takes tartaro: tartaro goes down whole and holds the roles server, loadbalancer",
		"if the fault takes tartaro: tartaro is keepalived's MASTER",
		"lb-master-lost's promises apply",
	} {
		if !strings.Contains(why, want) {
			t.Errorf("server-kill-1 reasons lack %q:\n%s", want, why)
		}
	}
	if strings.Contains(why, "if the fault takes styx: styx is keepalived's MASTER") {
		t.Errorf("styx is a BACKUP:\n%s", why)
	}
	// Both servers are both keepalived members: the VIP, and the LAN with it,
	// are gone.
	if c := cell(t, d, "server-kill-2", "lan"); c.During != matrix.Down {
		t.Errorf("server-kill-2 lan %s, want down", promises.Describe(c))
	}
	// niflheim is a worker, but tainted storage=only: the apps are not
	// there, and its loss keeps nfs-lost's strict apps promise.
	if why := reasons(d, "nfs-lost"); !strings.Contains(why, "niflheim is a worker tainted storage=only:NoSchedule: the apps do not run there") ||
		strings.Contains(why, "worker-lost's promises apply") {
		t.Errorf("nfs-lost reasons:\n%s", why)
	}
	nfs := documented(t).Row("nfs-lost").Cells["apps"]
	if c := cell(t, d, "nfs-lost", "apps"); c.During != matrix.Up || c.Within.Duration != nfs.Within.Duration {
		t.Errorf("nfs-lost apps %s, want the documented %s", promises.Describe(c), promises.Describe(nfs))
	}
}

// Seed 002: one server, no API load balancer: none of their faults exists.
func TestSeed002(t *testing.T) {
	_, d := derive(t, "rack-seed002.example.yaml", "")
	for fault, want := range map[string]string{
		"server-kill-1":  "1 server",
		"server-kill-2":  "1 server",
		"lb-master-lost": "spec.controlPlane.keepalived is empty",
		"cp-lb-lost":     "no control-plane load balancer",
	} {
		if got := d.Row(fault).NotApplicable; !strings.Contains(got, want) {
			t.Errorf("%s: not applicable %q, want %q", fault, got, want)
		}
	}
	for _, fault := range []string{"nfs-lost", "worker-lost", "ups-power-loss"} {
		if na := d.Row(fault).NotApplicable; na != "" {
			t.Errorf("%s not applicable: %s", fault, na)
		}
	}
}

// Seed 004: three schedulable K3s servers: a server's loss is also a
// worker's.
func TestSeed004(t *testing.T) {
	_, d := derive(t, "rack-seed004.example.yaml", "")
	if !strings.Contains(reasons(d, "server-kill-1"), "runs workloads: its pods go with it: worker-lost's promises apply") {
		t.Errorf("server-kill-1 reasons:\n%s", reasons(d, "server-kill-1"))
	}
	if c := cell(t, d, "server-kill-1", "api"); c.During != matrix.Up {
		t.Errorf("three servers keep the quorum: api %s", promises.Describe(c))
	}
	if c := cell(t, d, "server-kill-1", "apps"); c.Within.Duration != 90*time.Second {
		t.Errorf("server-kill-1 apps %s, want worker-lost's 90s", promises.Describe(c))
	}
	if slices.Contains(d.Matrix.Row("server-kill-1").Labels, "quorum") {
		t.Error("server-kill-1 labelled quorum on three servers")
	}
	if len(d.Unkeepable()) != 0 {
		t.Errorf("unkeepable %+v", d.Unkeepable())
	}
}

// On K3s nothing inside the cluster reaches the API through the rack's load
// balancer: losing it leaves healing up (the K3s lab's in-cluster heal probe
// saw 12 replaced pods of 12 through cp-lb-lost), while the API through the
// load balancer goes. On kubeadm the kubelets reach the API through the VIP,
// and healing stops.
func TestK3sKeepsHealingWithoutTheAPILoadBalancer(t *testing.T) {
	for _, c := range []struct {
		file string
		p    topology.ProviderName
		heal matrix.Expect
	}{
		{"lab-k3s.yaml", "", matrix.Up},
		{"lab-k3s-ssh.yaml", "", matrix.Up},
		{"rack-seed004.example.yaml", "", matrix.Up},
		{"rack-seed000.example.yaml", topology.ProviderSSH, matrix.Up},
		{"lab.yaml", "", matrix.Down},
	} {
		_, d := derive(t, c.file, c.p)
		if got := cell(t, d, "cp-lb-lost", "heal"); got.During != c.heal || (got.During == matrix.Up && got.Within.Duration == 0) {
			t.Errorf("%s: cp-lb-lost heal %s, want %s", c.file, promises.Describe(got), c.heal)
		}
		if got := cell(t, d, "cp-lb-lost", "api"); got.During != matrix.Down {
			t.Errorf("%s: cp-lb-lost api %s, want down (the API through the load balancer)", c.file, promises.Describe(got))
		}
		if why := reasons(d, "cp-lb-lost"); (c.heal == matrix.Up) != strings.Contains(why, "client-side load balancer") {
			t.Errorf("%s: cp-lb-lost reasons:\n%s", c.file, why)
		}
	}
}

// The converged lab (seed 000's shape): server-kill-1 takes the etcd leader,
// either server. Whichever it is, the quorum goes; only server-1's loss also
// moves the VIP, and the LAN with it. The matrix's row must hold for both
// (the LAN's looser blip); each choice is judged by its own, stricter row.
func TestConvergedLabJudgesEachChoice(t *testing.T) {
	m, d := derive(t, "lab-converged.yaml", "")
	doc := m.Row("server-kill-1").Cells["lan"]
	moved := d.ForTargets("server-kill-1", []string{"server-1"})
	stays := d.ForTargets("server-kill-1", []string{"server-2"})
	if moved == nil || stays == nil {
		t.Fatalf("server-kill-1: no row per choice (%v, %v)", moved, stays)
	}
	merged := cell(t, d, "server-kill-1", "lan")
	if c := stays.Cells["lan"]; c.During != matrix.Up || c.Within.Duration != doc.Within.Duration {
		t.Errorf("server-2 lost, the VIP stays: lan %s, want the documented %s", promises.Describe(c), promises.Describe(doc))
	}
	if c := moved.Cells["lan"]; c.During != matrix.Up || c.Within.Duration <= doc.Within.Duration || c.Within != merged.Within {
		t.Errorf("server-1 lost, the VIP moves: lan %s, want the VIP's failover %s", promises.Describe(c), promises.Describe(merged))
	}
	for _, row := range []*matrix.Row{moved, stays} {
		if c := row.Cells["api"]; c.During != matrix.Down {
			t.Errorf("either server lost loses the quorum: api %s", promises.Describe(c))
		}
	}
	if d.ForTargets("server-kill-1", []string{"worker-1"}) != nil || d.ForTargets("nfs-lost", []string{"storage-1"}) != nil {
		t.Error("a row per choice only for the machines a choice takes, and only where the fault chooses")
	}

	// worker-lost: worker-1 is the one worker that runs the apps.
	if na := d.Row("worker-lost").NotApplicable; !strings.Contains(na, "1 node(s) that run the apps") {
		t.Errorf("worker-lost: %q", na)
	}
}
