package rackstate

import (
	"slices"
	"testing"
)

// After an upgrade the rack is the same when its machines, VIP holder, etcd
// members and workloads are: the members' new version is the upgrade's
// purpose, not a residue; a member lost still is one.
func TestAcrossAnUpgrade(t *testing.T) {
	before := Snapshot{Machines: []string{"server-1: running"}, VIP: "172.29.10.100 on lb-1",
		Etcd:      []string{"server-1: member, version 3.5.24", "server-2: member, version 3.5.24"},
		Workloads: []string{"Deployment kube-system/coredns: 2/2 ready"}}
	upgraded := Snapshot{Machines: before.Machines, VIP: before.VIP,
		Etcd:      []string{"server-1: member, version 3.6.5", "server-2: member, version 3.6.5"},
		Workloads: before.Workloads}
	if d := Diff(before.AcrossAnUpgrade(), upgraded.AcrossAnUpgrade()); len(d) != 0 {
		t.Errorf("the upgrade's own change is a residue: %q", d)
	}
	lost := upgraded
	lost.Etcd = []string{"server-1: member, version 3.6.5"}
	if d := Diff(before.AcrossAnUpgrade(), lost.AcrossAnUpgrade()); len(d) == 0 {
		t.Error("a member lost in the upgrade is no residue")
	}
	if !slices.Equal(before.Etcd, []string{"server-1: member, version 3.5.24", "server-2: member, version 3.5.24"}) {
		t.Errorf("AcrossAnUpgrade changed its receiver: %q", before.Etcd)
	}
}
