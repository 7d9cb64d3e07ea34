package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/cluster/containers"
	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/internal/dockertest"
)

// TestIntegrationRecoverAfterSIGKILL shows the last layer of "a fault is always
// reverted" with a real container: a harness process stops a node through the
// ledger, is SIGKILLed while the fault is in place, and `rackdrill recover`
// starts the node again.
func TestIntegrationRecoverAfterSIGKILL(t *testing.T) {
	for _, tc := range []struct {
		mode   fault.PowerMode
		signal syscall.Signal
	}{
		{fault.PowerStop, syscall.SIGKILL},
		{fault.PowerKill, syscall.SIGKILL},
		// SIGINT and SIGTERM: the harness reverts by itself, nothing is left.
		{fault.PowerKill, syscall.SIGINT},
		{fault.PowerStop, syscall.SIGTERM},
	} {
		t.Run(fmt.Sprintf("%s then %s", tc.mode, tc.signal), func(t *testing.T) {
			testRecover(t, tc.mode, tc.signal)
		})
	}
}

func testRecover(t *testing.T, mode fault.PowerMode, sig syscall.Signal) {
	dockertest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rack := fmt.Sprintf("itest-%d", time.Now().UnixNano())
	prov := containers.NewProvider(rack, containers.WithStopTimeout(5))
	t.Cleanup(func() {
		if err := prov.Down(context.Background()); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	req := dockertest.SleeperImage(t, map[string]string{
		containers.LabelRack: rack, containers.LabelNode: "nas-1", containers.LabelRoles: "nas", containers.LabelAddress: "172.29.10.41"})
	c, err := testcontainers.GenericContainer(ctx, req)
	testcontainers.CleanupContainer(t, c)
	if err != nil {
		t.Fatal(err)
	}
	node := nasNode(ctx, t, prov)
	if running, err := node.Running(ctx); err != nil || !running {
		t.Fatalf("node not running before the fault: %v %v", running, err)
	}

	// The rack's ledger is in the state folder, which the harness and
	// recover find from the environment, whatever folder each started in.
	t.Setenv(fault.StateEnv, t.TempDir())
	harness := exec.Command(os.Args[0], "-test.run=^TestHelperHoldFault$", "-test.v")
	harness.Dir = t.TempDir()
	harness.Env = append(os.Environ(), "RACKDRILL_HELPER=hold", "RACKDRILL_HELPER_RACK="+rack,
		"RACKDRILL_HELPER_MODE="+string(mode))
	out, err := harness.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	harness.Stderr = harness.Stdout
	if err := harness.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = harness.Process.Kill(); _ = harness.Wait() }()
	waitForLine(t, out, "FAULT-IN-PLACE", 90*time.Second)

	if running, _ := node.Running(ctx); running {
		t.Fatal("the fault is in place but the node runs")
	}
	if err := harness.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	werr := harness.Wait()
	l, _ := fault.LedgerFor(rack)
	entries, _ := l.Entries()

	if sig != syscall.SIGKILL {
		// The harness reverted on its own before exiting.
		if werr == nil {
			t.Error("the harness exited 0 after being interrupted mid-fault")
		}
		if running, _ := node.Running(ctx); !running || len(entries) != 0 {
			t.Fatalf("after %s: node running %v, ledger %d entries", sig, running, len(entries))
		}
		return
	}

	if running, _ := node.Running(ctx); running || len(entries) != 1 || entries[0].Fault != "nfs-lost" {
		t.Fatalf("after SIGKILL: node running %v (want not), ledger %+v (want the fault)", running, entries)
	}
	bin := buildRackdrill(t)
	rec := exec.CommandContext(ctx, bin, "recover")
	rec.Dir = t.TempDir() // another folder than the harness's
	recOut, err := rec.CombinedOutput()
	if err != nil {
		t.Fatalf("rackdrill recover: %v\n%s", err, recOut)
	}
	if !strings.Contains(string(recOut), "nfs-lost") || !strings.Contains(string(recOut), "reverted") {
		t.Errorf("recover output:\n%s", recOut)
	}
	if running, err := node.Running(ctx); err != nil || !running {
		t.Fatalf("node not running after recover: %v %v\n%s", running, err, recOut)
	}
	if entries, _ := l.Entries(); len(entries) != 0 {
		t.Errorf("ledger not cleared: %+v", entries)
	}
	second := exec.CommandContext(ctx, bin, "recover")
	second.Dir = t.TempDir()
	again, err := second.CombinedOutput()
	if err != nil || !strings.Contains(string(again), "nothing to recover") || !strings.Contains(string(again), "rack "+rack+": no fault in ") {
		t.Errorf("second recover: %v\n%s", err, again)
	}
}

// TestHelperHoldFault is the harness process of the integration test: it holds
// the fault until it is signalled. It does nothing in a normal test run.
func TestHelperHoldFault(t *testing.T) {
	if os.Getenv("RACKDRILL_HELPER") != "hold" {
		t.Skip("helper process of TestIntegrationRecoverAfterSIGKILL")
	}
	ctx := context.Background()
	rack := os.Getenv("RACKDRILL_HELPER_RACK")
	prov := containers.NewProvider(rack, containers.WithStopTimeout(5))
	node := nasNode(ctx, t, prov)
	l, err := fault.LedgerFor(rack)
	if err != nil {
		t.Fatal(err)
	}
	f := fault.NewNodePower("nfs-lost", fault.PowerMode(os.Getenv("RACKDRILL_HELPER_MODE")), node)
	g := fault.NewGuard(l, fault.WithRack(rack, "containers"))
	err = g.Hold(ctx, f, 2*time.Minute, func(ctx context.Context) error {
		fmt.Println("FAULT-IN-PLACE")
		<-ctx.Done()
		return ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
}

func nasNode(ctx context.Context, t *testing.T, p *containers.Provider) cluster.Node {
	t.Helper()
	nodes, err := p.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sel, err := cluster.Select(nodes, "nas:0")
	if err != nil {
		t.Fatal(err)
	}
	if sel[0].Name() != "nas-1" || sel[0].Addr().String() != "172.29.10.41" {
		t.Fatalf("node %s at %s", sel[0].Name(), sel[0].Addr())
	}
	return sel[0]
}

func waitForLine(t *testing.T, r interface{ Read([]byte) (int, error) }, want string, timeout time.Duration) {
	t.Helper()
	found := make(chan bool, 1)
	var seen []string
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			seen = append(seen, sc.Text())
			if strings.Contains(sc.Text(), want) {
				found <- true
				// keep draining so the helper never blocks on a full pipe
				for sc.Scan() {
				}
				return
			}
		}
		found <- false
	}()
	select {
	case ok := <-found:
		if !ok {
			t.Fatalf("the harness exited before %q:\n%s", want, strings.Join(seen, "\n"))
		}
	case <-time.After(timeout):
		t.Fatalf("no %q within %s", want, timeout)
	}
}
