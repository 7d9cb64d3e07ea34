package fault

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"rackdrill.dev/rackdrill/harness/cluster"
	rexec "rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/topology"
)

// recordingNode is a machine that runs nothing and remembers every command it
// was given: the dead-man timers are systemd units on a real machine, which
// this test cannot start (the lab's smoke test fires them for real).
type recordingNode struct {
	name string
	mu   *sync.Mutex
	log  *[][]string
}

func (n recordingNode) Command(ctx context.Context, name string, args ...string) rexec.Cmd {
	n.mu.Lock()
	*n.log = append(*n.log, append([]string{n.name, name}, args...))
	n.mu.Unlock()
	return rexec.Local{}.Command(ctx, "true")
}
func (n recordingNode) Name() string                          { return n.name }
func (n recordingNode) Roles() []topology.Role                { return nil }
func (n recordingNode) Addr() netip.Addr                      { return netip.Addr{} }
func (n recordingNode) Stop(context.Context) error            { return nil }
func (n recordingNode) Start(context.Context) error           { return nil }
func (n recordingNode) Kill(context.Context) error            { return nil }
func (n recordingNode) Running(context.Context) (bool, error) { return true, nil }

type nodeList []cluster.Node

func (l nodeList) Nodes(context.Context) ([]cluster.Node, error) { return l, nil }

// cp-lb-lost over SSH stops keepalived and HAProxy on each load balancer.
// The first version armed each machine's timer with its first step's revert
// only: killed mid-fault, it restarted keepalived and left HAProxy stopped.
func TestDeadManTimerRevertsEveryStepOfItsMachine(t *testing.T) {
	steps := []RemoteStep{
		{Node: "lb-1", Inject: "systemctl stop keepalived", Revert: "systemctl start keepalived", DeadMan: 2 * time.Minute},
		{Node: "lb-1", Inject: "systemctl stop haproxy", Revert: "systemctl start haproxy", DeadMan: 90 * time.Second},
		{Node: "lb-2", Inject: "systemctl stop keepalived", Revert: "systemctl start keepalived", DeadMan: 2 * time.Minute},
	}
	var mu sync.Mutex
	var log [][]string
	nodes := nodeList{recordingNode{"lb-1", &mu, &log}, recordingNode{"lb-2", &mu, &log}}
	f := NewRemote("cp-lb-lost", nodes, logr.Discard(), steps...)
	if err := f.Inject(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := f.Revert(context.Background()); err != nil {
		t.Fatal(err)
	}
	var armed []string
	for _, argv := range log {
		if argv[1] == "systemd-run" {
			armed = append(armed, argv[0]+": "+argv[len(argv)-1])
			if argv[0] == "lb-1" && !slices.Contains(argv, "--on-active=90s") {
				t.Errorf("lb-1's timer is not armed with its shortest delay: %q", argv)
			}
		}
	}
	want := []string{
		"lb-1: rc=0; ( systemctl start haproxy ) || rc=1; ( systemctl start keepalived ) || rc=1; exit $rc",
		"lb-2: rc=0; ( systemctl start keepalived ) || rc=1; exit $rc",
	}
	if !slices.Equal(armed, want) {
		t.Errorf("timers armed with\n  %s\nwant\n  %s", strings.Join(armed, "\n  "), strings.Join(want, "\n  "))
	}
	// Each machine's timer goes in before its first step runs.
	first := slices.IndexFunc(log, func(a []string) bool { return a[0] == "lb-1" && a[1] == "sh" })
	if arm := slices.IndexFunc(log, func(a []string) bool { return a[0] == "lb-1" && a[1] == "systemd-run" }); arm < 0 || arm > first {
		t.Errorf("lb-1's timer armed at command %d, its first step at %d", arm, first)
	}
}

// What the timer runs, run by a real shell: every revert, last step first,
// the later ones even when one fails, and a failed unit when any did.
func TestDeadManScriptRunsEveryRevert(t *testing.T) {
	out := filepath.Join(t.TempDir(), "reverted")
	steps := []RemoteStep{
		{Node: "m", Revert: "echo first >> " + out},
		{Node: "m", Revert: "false"},
		{Node: "other", Revert: "echo other >> " + out},
		{Node: "m", Revert: "echo last >> " + out},
	}
	err := exec.Command("sh", "-c", DeadManScript(steps, "m")).Run()
	if err == nil {
		t.Error("a failed revert does not fail the timer's unit")
	}
	got, _ := os.ReadFile(out)
	if string(got) != "last\nfirst\n" {
		t.Errorf("reverted %q, want last then first (and nothing of another machine)", got)
	}
}

// flakyNode is a machine whose power a killed run's in-flight kill reaches
// after the revert's start.
type flakyNode struct {
	recordingNode
	mu      sync.Mutex
	running bool
	starts  int
}

func (n *flakyNode) Start(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.starts++
	n.running = true
	if n.starts == 1 {
		go func() { // the dead run's docker kill lands now
			time.Sleep(50 * time.Millisecond)
			n.mu.Lock()
			n.running = false
			n.mu.Unlock()
		}()
	}
	return nil
}

func (n *flakyNode) Running(context.Context) (bool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.running, nil
}

// The kill-test's finding: recover right after a run SIGKILLed mid-injection
// started server-1, then the dead run's kill stopped it again. The revert
// watches what it started and starts it again.
func TestNodePowerRevertOutlastsAnInFlightKill(t *testing.T) {
	defer func(d time.Duration) { PowerOnSettle = d }(PowerOnSettle)
	PowerOnSettle = 200 * time.Millisecond
	var mu sync.Mutex
	var log [][]string
	n := &flakyNode{recordingNode: recordingNode{"server-1", &mu, &log}}
	if err := NewNodePower("server-kill-2", PowerKill, n).Revert(context.Background()); err != nil {
		t.Fatal(err)
	}
	if up, _ := n.Running(context.Background()); !up || n.starts != 2 {
		t.Errorf("running %v after %d starts; want running after a second start", up, n.starts)
	}
}

// localNode runs its commands on this machine: the shell dead-man timer
// needs only sh, setsid and sleep, as on a machine without systemd.
type localNode struct{ recordingNode }

func (n localNode) Command(ctx context.Context, name string, args ...string) rexec.Cmd {
	return rexec.Local{}.Command(ctx, name, args...)
}

// A machine without systemd (a NAS appliance) gets a detached shell timer:
// armed, it reverts by itself when the harness is gone; cancelled, it
// reverts nothing and leaves no process or file; the plan says which timer.
func TestShellDeadManTimer(t *testing.T) {
	ShellTimerDir = t.TempDir()
	defer func() { ShellTimerDir = "/var/tmp/rackdrill-deadman" }()
	out := filepath.Join(t.TempDir(), "reverted")
	steps := []RemoteStep{{Node: "nas", Inject: "true", Revert: "echo reverted >> " + out, DeadMan: time.Second, Timer: topology.TimerShell}}
	node := localNode{recordingNode{name: "nas"}}
	f := NewRemote("nfs-lost", nodeList{node}, logr.Discard(), steps...)
	ctx := context.Background()

	inject, _ := f.Steps()
	if !strings.Contains(inject[0].Action, "a detached shell timer, setsid sleep 1s, for a machine without systemd") {
		t.Errorf("the plan says %q", inject[0].Action)
	}

	// The harness dies after arming: the timer fires and reverts.
	if err := f.arm(ctx, node); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { b, _ := os.ReadFile(out); return string(b) == "reverted\n" })
	waitFor(t, 5*time.Second, func() bool { m, _ := filepath.Glob(filepath.Join(ShellTimerDir, "*")); return len(m) == 0 })

	// Re-armed then cancelled (a revert that succeeded): nothing fires, the
	// sleeping session is killed, the files are gone.
	os.Remove(out)
	if err := f.arm(ctx, node); err != nil {
		t.Fatal(err)
	}
	pids, _ := filepath.Glob(filepath.Join(ShellTimerDir, "*.pid"))
	if len(pids) != 1 {
		t.Fatalf("armed: %v", pids)
	}
	pid, _ := os.ReadFile(pids[0])
	argv := f.disarmCommand("nas")
	if err := rexec.Run(node.Command(ctx, argv[0], argv[1:]...)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // past the delay: a live timer would have fired
	if b, err := os.ReadFile(out); err == nil {
		t.Errorf("a cancelled timer reverted: %q", b)
	}
	if left, _ := filepath.Glob(filepath.Join(ShellTimerDir, "*")); len(left) != 0 {
		t.Errorf("files left: %v", left)
	}
	// Gone, or a zombie its new parent has not reaped yet: not running.
	if stat, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/stat"); err == nil {
		if f := strings.Fields(string(stat)); len(f) > 2 && f[2] != "Z" {
			t.Errorf("the timer's session %s still runs: %s", strings.TrimSpace(string(pid)), stat)
		}
	}
}

func waitFor(t *testing.T, limit time.Duration, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("not within %s", limit)
}
