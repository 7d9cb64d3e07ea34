package scenarios_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/cluster/containers"
	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/probe"
	"rackdrill.dev/rackdrill/harness/probe/agent"
	"rackdrill.dev/rackdrill/internal/dockertest"
	"rackdrill.dev/rackdrill/scenarios"
)

// miniRack is two real nodes, each a container running the demo app: enough to
// drill a fault that takes one down while probes watch both.
type miniRack struct {
	prov        *containers.Provider
	urlA, urlB  string
	nodeA       cluster.Node
	ledger      *fault.Ledger
	interval    time.Duration
	lan, inet   probe.Probe
	unprobedFor map[string]string
}

func newMiniRack(t *testing.T) *miniRack {
	dockertest.Require(t)
	ctx := context.Background()
	rack := fmt.Sprintf("itest-run-%d", time.Now().UnixNano())
	m := &miniRack{prov: containers.NewProvider(rack, containers.WithStopTimeout(5)), interval: 100 * time.Millisecond}
	t.Cleanup(func() { _ = m.prov.Down(context.Background()) })
	var ips []string
	for _, n := range []string{"node-a", "node-b"} {
		req := dockertest.GoImage(t, "agent", "..", "./cmd/rackdrill-agent",
			map[string]string{containers.LabelRack: rack, containers.LabelNode: n, containers.LabelRoles: "worker"},
			"--demo", "--listen", ":8080")
		c, err := testcontainers.GenericContainer(ctx, req)
		testcontainers.CleanupContainer(t, c)
		if err != nil {
			t.Fatal(err)
		}
		ip, err := c.ContainerIP(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ips = append(ips, ip)
	}
	m.urlA, m.urlB = "http://"+ips[0]+":8080/", "http://"+ips[1]+":8080/"
	nodes, err := m.prov.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sel, err := cluster.ByName(nodes, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	m.nodeA = sel[0]
	if m.ledger, err = fault.OpenLedger(filepath.Join(t.TempDir(), "ledger")); err != nil {
		t.Fatal(err)
	}
	m.lan = probe.NewHTTP("lan", m.urlA, probe.WithMarker(agent.DemoMarker))
	m.inet = probe.NewHTTP("internet", m.urlB, probe.WithMarker(agent.DemoMarker))
	m.unprobedFor = map[string]string{}
	for _, p := range []string{"api", "heal", "apps", "storage", "data"} {
		m.unprobedFor[p] = "not part of the test rack"
	}
	return m
}

func (m *miniRack) row(lan matrix.Expect) *matrix.Row {
	d := func(x time.Duration) metav1.Duration { return metav1.Duration{Duration: x} }
	cells := map[string]matrix.Cell{
		"lan":      {During: lan, Within: d(2 * time.Second)},
		"internet": {During: matrix.Up, Within: d(time.Second)},
	}
	return &matrix.Row{Fault: "node-a-lost", Source: "test", Cells: cells,
		Settle: d(time.Second), Observe: d(3 * time.Second), Recovery: d(30 * time.Second)}
}

func (m *miniRack) input(row *matrix.Row) scenarios.ScenarioInput {
	return scenarios.ScenarioInput{
		Row: row,
		Build: func(context.Context) (fault.Recordable, error) {
			return fault.NewNodePower(row.Fault, fault.PowerStop, m.nodeA), nil
		},
		Guard:    fault.NewGuard(m.ledger, fault.WithRack("itest", "containers")),
		Probes:   []probe.Probe{m.lan, m.inet},
		Unprobed: m.unprobedFor,
		Interval: m.interval,
		Timeout:  time.Second,
	}
}

func (m *miniRack) assertRestored(t *testing.T) {
	t.Helper()
	if running, err := m.nodeA.Running(context.Background()); err != nil || !running {
		t.Errorf("node-a not running after the drill: %v %v", running, err)
	}
	if es, _ := m.ledger.Entries(); len(es) != 0 {
		t.Errorf("ledger not empty: %+v", es)
	}
}

func TestIntegrationRunDrill(t *testing.T) {
	m := newMiniRack(t)
	ctx := context.Background()

	t.Run("the promise holds", func(t *testing.T) {
		out, err := scenarios.Run(ctx, m.input(m.row(matrix.Down)))
		if err != nil {
			t.Fatal(err)
		}
		if out.Result.Verdict != matrix.Held {
			t.Fatalf("verdict %s: %+v", out.Result.Verdict, out.Result.Cells)
		}
		lan := out.Result.Cells[2]
		if lan.Probe != "lan" || lan.Observed != "down" || *lan.TimeToImpact > 2*time.Second || lan.TimeToRecovery == nil {
			t.Errorf("lan cell: %+v", lan)
		}
		// 100ms apart while it answers; during the outage each check runs to its
		// 1s timeout (a stopped container's address answers no ARP).
		if n := len(out.Timelines["lan"]); n < 15 {
			t.Errorf("only %d lan samples", n)
		}
		t.Logf("lan: down %s after the injection, back %s after the revert; internet: %s",
			matrix.Since(lan.TimeToImpact), matrix.Since(lan.TimeToRecovery), out.Result.Cells[3].Why)
		m.assertRestored(t)
	})

	t.Run("a broken promise is reported and the fault still reverted", func(t *testing.T) {
		out, err := scenarios.Run(ctx, m.input(m.row(matrix.Up)))
		if err != nil {
			t.Fatal(err)
		}
		lan := out.Result.Cells[2]
		if out.Result.Verdict != matrix.Broken || lan.Verdict != matrix.Broken || !strings.Contains(lan.Why, "promised up, but was down") {
			t.Errorf("verdict %s, lan %+v", out.Result.Verdict, lan)
		}
		m.assertRestored(t)
	})

	t.Run("no injection unless steady", func(t *testing.T) {
		in := m.input(m.row(matrix.Down))
		in.Probes = []probe.Probe{m.inet, probe.NewHTTP("lan", "http://127.0.0.1:1/")}
		built := false
		in.Build = func(context.Context) (fault.Recordable, error) { built = true; return nil, errors.New("unreachable") }
		in.Row.Recovery = metav1.Duration{Duration: 2 * time.Second}
		_, err := scenarios.Run(ctx, in)
		if !errors.Is(err, scenarios.ErrNotSteady) || !strings.Contains(err.Error(), "lan: ") || built {
			t.Errorf("err %v, fault built %v", err, built)
		}
		m.assertRestored(t)
	})

	t.Run("cancelled mid-fault: reverted", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		in := m.input(m.row(matrix.Down))
		in.Row.Observe = metav1.Duration{Duration: time.Minute}
		go func() {
			time.Sleep(in.Row.Settle.Duration + 3*time.Second)
			cancel()
		}()
		_, err := scenarios.Run(cctx, in)
		if err == nil {
			t.Error("a cancelled drill returned no error")
		}
		m.assertRestored(t)
	})
}
