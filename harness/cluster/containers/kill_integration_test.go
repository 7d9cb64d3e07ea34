package containers_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"

	"rackdrill.dev/rackdrill/harness/cluster/containers"
	"rackdrill.dev/rackdrill/internal/dockertest"
)

// A lab machine killed while runc, inside it, has a pod's cgroup frozen
// (runc freezes a container's cgroup while it applies its settings): the
// kernel kills every process of the machine but the frozen one, the
// machine's init stays a zombie waiting for it, and Docker gives up after
// 10 s ("is zombie and can not be killed" / "did not receive an exit
// event"). Seen in worker-lost on the kubeadm lab, 2026-12-07: the drill
// errored and the machine stayed half dead until its cgroup was thawed by
// hand. Kill thaws what is frozen inside the machine and the kill completes.
func TestIntegrationKillThawsAFrozenCgroup(t *testing.T) {
	dockertest.Require(t)
	if os.Geteuid() != 0 {
		t.Skip("freezes a cgroup: needs root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rack := fmt.Sprintf("freeze-%d", time.Now().UnixNano())
	prov := containers.NewProvider(rack, containers.WithStopTimeout(5))
	t.Cleanup(func() { _ = prov.Down(context.Background()) })
	req := dockertest.SleeperImage(t, map[string]string{
		containers.LabelRack: rack, containers.LabelNode: "worker-1", containers.LabelRoles: "worker", containers.LabelAddress: "172.29.10.31"})
	c, err := testcontainers.GenericContainer(ctx, req)
	testcontainers.CleanupContainer(t, c)
	if err != nil {
		t.Fatal(err)
	}
	id := c.GetContainerID()
	// A second process in the machine (as a pod's container is), moved into
	// a child cgroup of the machine's and frozen there.
	if out, err := exec.CommandContext(ctx, "docker", "exec", "-d", id, "/entry").CombinedOutput(); err != nil {
		t.Fatalf("docker exec: %v %s", err, out)
	}
	pidOut, err := exec.CommandContext(ctx, "docker", "inspect", "-f", "{{.State.Pid}}", id).Output()
	if err != nil {
		t.Fatal(err)
	}
	initPid := strings.TrimSpace(string(pidOut))
	frozen, state, procs := frozenChild(t, initPid)
	t.Cleanup(func() { _ = os.WriteFile(state, []byte(thawValue(state)), 0o644) })
	var child string
	deadline := time.Now().Add(10 * time.Second)
	for child == "" && time.Now().Before(deadline) {
		data, _ := os.ReadFile(procs)
		for _, p := range strings.Fields(string(data)) {
			if p != initPid {
				child = p
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if child == "" {
		t.Fatal("the second process did not start")
	}
	if err := os.WriteFile(filepath.Join(frozen, "cgroup.procs"), []byte(child), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, []byte(freezeValue(state)), 0o644); err != nil {
		t.Fatal(err)
	}

	nodes, err := prov.Nodes(ctx)
	if err != nil || len(nodes) != 1 {
		t.Fatalf("nodes %v %v", nodes, err)
	}
	start := time.Now()
	if err := nodes[0].Kill(ctx); err != nil {
		t.Fatalf("kill with a frozen cgroup inside: %v", err)
	}
	if running, err := nodes[0].Running(ctx); err != nil || running {
		t.Fatalf("after the kill (%s): running %v, %v", time.Since(start).Round(time.Millisecond), running, err)
	}
	t.Logf("killed in %s", time.Since(start).Round(time.Millisecond))
}

// frozenChild makes a child cgroup of the freezer cgroup of process pid:
// its folder, the file that freezes it, and the parent's process list.
func frozenChild(t *testing.T, pid string) (dir, state, parentProcs string) {
	t.Helper()
	data, err := os.ReadFile("/proc/" + pid + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		var parent, file string
		switch {
		case strings.Contains(","+f[1]+",", ",freezer,"):
			parent, file = filepath.Join("/sys/fs/cgroup/freezer", f[2]), "freezer.state"
		case f[0] == "0" && f[1] == "":
			parent, file = filepath.Join("/sys/fs/cgroup", f[2]), "cgroup.freeze"
		default:
			continue
		}
		dir := filepath.Join(parent, "rackdrill-frozen")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Skipf("cannot make a child cgroup: %v", err)
		}
		return dir, filepath.Join(dir, file), filepath.Join(parent, "cgroup.procs")
	}
	t.Skip("no freezer cgroup")
	return "", "", ""
}

func freezeValue(state string) string {
	if strings.HasSuffix(state, "cgroup.freeze") {
		return "1"
	}
	return "FROZEN"
}

func thawValue(state string) string {
	if strings.HasSuffix(state, "cgroup.freeze") {
		return "0"
	}
	return "THAWED"
}
