package framework

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/onsi/ginkgo/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/rackstate"
	"rackdrill.dev/rackdrill/harness/topology"
	"rackdrill.dev/rackdrill/harness/upgrade"
	"rackdrill.dev/rackdrill/scenarios"
)

// DrillInput assembles the drill of one matrix row on this rack: whether the
// row applies (fault.PlanFor), the fault bound to the plan's targets, the guard
// journaling into the run's ledger, the probes, the residue check and the dump.
func (e *Env) DrillInput(row *matrix.Row) (scenarios.ScenarioInput, error) {
	in := e.drillBase(row)
	plan, err := fault.PlanFor(row.Fault, e.Rack, e.Provider)
	if err != nil {
		return in, err
	}
	if !plan.Applicable {
		in.NotApplicable = plan.Why
		return in, nil
	}
	if e.Provider == topology.ProviderSSH && !slices.Contains(e.approved, row.Fault) {
		// Whatever selected this drill, a real rack's gate did not let it
		// through: nothing is injected.
		return in, fmt.Errorf("drill %s on the real rack %s was not planned, gated and confirmed (see `rackdrill run --provider ssh --scenario %s --dry-run`): refusing to inject it",
			row.Fault, e.Rack.Metadata.Name, row.Fault)
	}
	if in.Probes, in.Unprobed, in.Data, err = e.probes(); err != nil {
		return in, fmt.Errorf("drill %s: %w", row.Fault, err)
	}
	in.Build = func(ctx context.Context) (fault.Recordable, error) {
		return fault.Build(ctx, row.Fault, runBinder{e}, e.Rack, e.Provider)
	}
	// A fault whose machines are chosen at injection (the etcd leader) is
	// judged against that choice's derived promises, not the looser ones
	// every choice keeps.
	in.Chosen = func(f fault.Recordable) *matrix.Row {
		ds, ok := f.(fault.Described)
		if !ok || e.Derivation == nil {
			return nil
		}
		inject, _ := ds.Steps()
		var machines []string
		for _, s := range inject {
			if e.Rack.Node(s.Where) != nil && !slices.Contains(machines, s.Where) {
				machines = append(machines, s.Where)
			}
		}
		chosen := e.Derivation.ForTargets(row.Fault, machines)
		if chosen != nil && !reflect.DeepEqual(*chosen, *row) {
			e.Log.Info("judged against the derived promises of the machines chosen at injection", "fault", row.Fault, "machines", machines)
		}
		return chosen
	}
	in.Effect = func(f fault.Recordable) (fault.Effect, error) {
		return fault.EffectOf(f, runBinder{e}, e.Rack, e.Provider)
	}
	in.Conditions = e.conditions
	e.observe(&in)
	return in, nil
}

// conditions observes, before the fault, what the deviations may name in
// their when: whether the tunnel client's pods run on a machine the built
// fault takes away. A rack without a tunnel has none.
func (e *Env) conditions(ctx context.Context, f fault.Recordable) (map[string]bool, error) {
	t := e.Rack.Spec.Tunnel
	if t == nil {
		return nil, nil
	}
	cs, err := e.Kube(ctx)
	if err != nil {
		return nil, err
	}
	d, err := cs.AppsV1().Deployments(t.Client.Namespace).Get(ctx, t.Client.Deployment, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("the tunnel client %s/%s: %w", t.Client.Namespace, t.Client.Deployment, err)
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, err
	}
	pods, err := cs.CoreV1().Pods(t.Client.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, err
	}
	targets := fault.TargetsOf(f)
	on, elsewhere := 0, 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || p.Spec.NodeName == "" {
			continue
		}
		if slices.Contains(targets, p.Spec.NodeName) {
			on++
		} else {
			elsewhere++
		}
	}
	if on+elsewhere == 0 {
		return nil, fmt.Errorf("no pod of the tunnel client %s/%s is scheduled", t.Client.Namespace, t.Client.Deployment)
	}
	e.Log.Info("before the fault", "tunnel client on its machines", on, "elsewhere", elsewhere, "machines", targets)
	return map[string]bool{matrix.CondTunnelClientOnTarget: on > 0, matrix.CondTunnelClientElsewhere: on == 0}, nil
}

// RehearsalInput is the drill of a rehearsed upgrade: build makes the
// upgrade (upgrade.Rolling), judged by row with the probes, the residue
// check and the dump of every drill. Only the lab is upgraded: the upgrade
// itself refuses any other rack.
func (e *Env) RehearsalInput(row *matrix.Row, build func(ctx context.Context) (fault.Recordable, error)) (scenarios.ScenarioInput, error) {
	in := e.drillBase(row)
	if e.Provider != topology.ProviderContainers {
		return in, fmt.Errorf("rack %s (provider %s): an upgrade is rehearsed on the lab only, never on a real rack", e.Rack.Metadata.Name, e.Provider)
	}
	var err error
	if in.Probes, in.Unprobed, in.Data, err = e.probes(); err != nil {
		return in, fmt.Errorf("drill %s: %w", row.Fault, err)
	}
	in.Build = build
	in.Course = upgrade.AwaitLimit
	e.observe(&in)
	in.Snapshot = func(ctx context.Context) (rackstate.Snapshot, error) {
		s, err := e.snapshot(ctx)
		return s.AcrossAnUpgrade(), err
	}
	return in, nil
}

// BatteryBudget is the rack's UPS battery budget (0 without a UPS): the
// power drill's revert, and so its interrupt grace, includes it.
func (e *Env) BatteryBudget() time.Duration {
	if e.Rack == nil || e.Rack.Spec.UPS == nil {
		return 0
	}
	return e.Rack.Spec.UPS.BatteryBudget.Duration
}

// drillBase is what every drill of this run has: its row, the deviations,
// the sampler's settings and the guard journaling into the run's ledger.
func (e *Env) drillBase(row *matrix.Row) scenarios.ScenarioInput {
	return scenarios.ScenarioInput{
		Row: row, Deviations: e.Deviations, Log: e.Log, NodeGrace: matrix.NodeGraceFor(e.Rack.Spec.Kubernetes.Version),
		Interval: e.Rack.Spec.Probes.Interval.Duration, Timeout: e.Rack.Spec.Probes.Timeout.Duration,
		Guard: fault.NewGuard(e.Ledger, fault.WithRack(e.Rack.Metadata.Name, string(e.Provider)),
			fault.WithTopology(e.TopologyFile), fault.WithLogger(e.Log)),
	}
}

// observe gives a drill the residue check, the steady state kept for
// recover, the dump of a failure, and the progress of its phases.
func (e *Env) observe(in *scenarios.ScenarioInput) {
	row := in.Row
	in.Snapshot = e.snapshot
	in.OnSteady = func(s rackstate.Snapshot) error {
		return rackstate.SaveSteady(rackstate.SteadyFile(e.StateDir),
			rackstate.Steady{Topology: e.TopologyFile, Fault: row.Fault, Taken: time.Now(), Snapshot: s})
	}
	in.Dump = func(ctx context.Context, why string) (string, error) {
		dir := filepath.Join(e.Artifacts, "dumps", row.Fault)
		return dir, e.dump(ctx, dir)
	}
	in.Phase = func(p string) {
		if e.suite != "" { // inside ginkgo specs (RunSuite, RunInProcess)
			ginkgo.By(row.Fault + ": " + p)
		}
		if e.Progress != nil {
			e.Progress(row.Fault, p)
		}
	}
	if e.Live != nil {
		in.Live = func(states map[string]bool) { e.Live(row.Fault, states) }
	}
}

// snapshot reads the state the residue check compares.
func (e *Env) snapshot(ctx context.Context) (rackstate.Snapshot, error) {
	nodes, err := e.Nodes.Nodes(ctx)
	if err != nil {
		return rackstate.Snapshot{}, err
	}
	cs, err := e.Kube(ctx)
	if err != nil {
		return rackstate.Snapshot{}, err
	}
	return rackstate.Take(ctx, e.Rack, nodes, cs)
}

// dump writes the artifacts of a failed drill.
func (e *Env) dump(ctx context.Context, dir string) error {
	// The interrupt grace counts on this limit (scenarios.RevertGrace).
	ctx, cancel := context.WithTimeout(ctx, scenarios.DumpLimit)
	defer cancel()
	nodes, err := e.Nodes.Nodes(ctx)
	if err != nil {
		return err
	}
	cs, _ := e.Kube(ctx) // the API may be what is down: the dump goes on without it
	ns := []string{"kube-system", e.Rack.Spec.Probes.Namespace}
	if m := e.Rack.Spec.MetalLB; m != nil {
		ns = append(ns, m.Namespace)
	}
	if i := e.Rack.Spec.Ingress; i != nil && i.Namespace != "" {
		ns = append(ns, i.Namespace)
	}
	if t := e.Rack.Spec.Tunnel; t != nil {
		ns = append(ns, t.Client.Namespace)
	}
	slices.Sort(ns)
	return rackstate.Dump(ctx, dir, e.Rack, nodes, cs, slices.Compact(ns))
}

// runBinder binds a drill's fault to the rack: the provider's machines, the
// servers chosen from etcd's state, the rack's API. The plan's binder is
// fault.PlanBinder; the fault is built by the same code for both.
type runBinder struct{ e *Env }

func (b runBinder) Nodes(ctx context.Context, names ...string) ([]cluster.Node, error) {
	nodes, err := b.e.Nodes.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	return cluster.ByName(nodes, names...)
}

func (b runBinder) Servers(ctx context.Context, count int) ([]cluster.Node, error) {
	nodes, err := b.e.Nodes.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	targets, err := b.e.etcdLeaderFirst(ctx, nodes)
	if err != nil {
		return nil, err
	}
	if len(targets) < count {
		return nil, fmt.Errorf("%d servers up, %d to kill", len(targets), count)
	}
	b.e.Log.Info("servers to kill", "targets", names(targets[:count]), "why", "the first holds the etcd leader")
	return targets[:count], nil
}

func (b runBinder) Kube() fault.KubeClient     { return b.e.Kube }
func (b runBinder) Lister() cluster.NodeLister { return b.e.Nodes }
func (b runBinder) Log() logr.Logger           { return b.e.Log }

// etcdLeaderFirst orders the servers with the one holding the etcd leader
// first, then the others in topology order.
func (e *Env) etcdLeaderFirst(ctx context.Context, nodes []cluster.Node) ([]cluster.Node, error) {
	leader, err := rackstate.EtcdLeader(ctx, nodes)
	if err != nil {
		return nil, fmt.Errorf("choose the server holding the etcd leader: %w", err)
	}
	var first, rest []cluster.Node
	for _, n := range nodes {
		if !slices.Contains(n.Roles(), topology.RoleServer) {
			continue
		}
		if n.Name() == leader {
			first = append(first, n)
		} else {
			rest = append(rest, n)
		}
	}
	return append(first, rest...), nil
}

func names(ns []cluster.Node) string {
	var out []string
	for _, n := range ns {
		out = append(out, n.Name())
	}
	return strings.Join(out, ", ")
}
