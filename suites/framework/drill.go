package framework

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/rackstate"
	"rackdrill.dev/rackdrill/harness/topology"
	"rackdrill.dev/rackdrill/scenarios"
)

// DrillInput assembles the drill of one matrix row on this rack: whether the
// row applies (fault.PlanFor), the fault bound to the plan's targets, the guard
// journaling into the run's ledger, the probes, the residue check and the dump.
func (e *Env) DrillInput(row *matrix.Row) (scenarios.ScenarioInput, error) {
	in := scenarios.ScenarioInput{
		Row: row, Deviations: e.Deviations, Log: e.Log,
		Interval: e.Rack.Spec.Probes.Interval.Duration, Timeout: e.Rack.Spec.Probes.Timeout.Duration,
		Guard: fault.NewGuard(e.Ledger, fault.WithRack(e.Rack.Metadata.Name, string(e.Provider)),
			fault.WithTopology(e.TopologyFile), fault.WithLogger(e.Log)),
	}
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
	in.Build = func(ctx context.Context) (fault.Recordable, error) { return e.buildFault(ctx, row.Fault, plan) }
	in.Snapshot = e.snapshot
	in.OnSteady = func(s rackstate.Snapshot) error {
		return rackstate.SaveSteady(rackstate.SteadyFile(e.Artifacts),
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
	return in, nil
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
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
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

// buildFault binds a fault to the rack: its nodes, or its cluster objects.
func (e *Env) buildFault(ctx context.Context, name string, plan fault.Plan) (fault.Recordable, error) {
	nodes, err := e.Nodes.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	byName := func(names ...string) ([]cluster.Node, error) {
		ns, err := cluster.ByName(nodes, names...)
		if err != nil {
			return nil, fmt.Errorf("fault %s: %w", name, err)
		}
		return ns, nil
	}
	spec := e.Rack.Spec
	if e.Provider == topology.ProviderSSH {
		if f, err := e.remoteFault(ctx, name, plan, nodes); f != nil || err != nil {
			return f, err
		}
	}
	switch name {
	case "server-kill-1", "server-kill-2":
		targets, err := e.etcdLeaderFirst(ctx, nodes)
		if err != nil {
			return nil, fmt.Errorf("fault %s: %w", name, err)
		}
		count := 1
		if name == "server-kill-2" {
			count = 2
		}
		e.Log.Info("servers to kill", "fault", name, "targets", names(targets[:count]), "why", "the first holds the etcd leader")
		return fault.NewNodePower(name, fault.PowerKill, targets[:count]...), nil
	case "lb-master-lost", "worker-lost":
		targets, err := byName(plan.Targets...)
		if err != nil {
			return nil, err
		}
		return fault.NewNodePower(name, fault.PowerKill, targets...), nil
	case "cp-lb-lost", "tunnel-server-lost", "nfs-lost":
		targets, err := byName(plan.Targets...)
		if err != nil {
			return nil, err
		}
		return fault.NewNodePower(name, fault.PowerStop, targets...), nil
	case "metallb-dropped":
		ctrl, err := fault.NewScale(ctx, name, e.Kube, spec.MetalLB.Namespace, "controller")
		if err != nil {
			return nil, err
		}
		speakers, err := fault.NewUnschedule(ctx, name, e.Kube, spec.MetalLB.Namespace, "speaker")
		if err != nil {
			return nil, err
		}
		return fault.NewAll(name, ctrl, speakers), nil
	case "tunnel-client-cut":
		return fault.NewScale(ctx, name, e.Kube, spec.Tunnel.Client.Namespace, spec.Tunnel.Client.Deployment)
	case "ups-power-loss":
		u := spec.UPS
		master, err := byName(u.Node)
		if err != nil {
			return nil, err
		}
		var stages [][]cluster.Node
		for _, st := range u.ShutdownOrder {
			ns, err := byName(st...)
			if err != nil {
				return nil, err
			}
			stages = append(stages, ns)
		}
		f := fault.NewUPSPowerLoss(name, master[0], u.Name, stages, u.BatteryBudget.Duration)
		if e.Provider == topology.ProviderSSH {
			// A real UPS is not played with: upsmon forces the shutdown, and
			// each machine comes back by its spec.nodes[].power.
			f.WithForcedShutdown(e.Rack.ServiceCommands(topology.ServiceUPS, u.Node).Stop)
		}
		return f, nil
	}
	return nil, fmt.Errorf("fault %s cannot be injected on provider %s by this version of rackdrill", name, e.Provider)
}

// remoteFault binds the faults that run commands on a real rack's machines,
// each behind its dead-man timer, to the plan's steps; nil for the faults that
// act through the API (MetalLB, the tunnel client), which are the same on
// every provider.
func (e *Env) remoteFault(ctx context.Context, name string, plan fault.Plan, nodes []cluster.Node) (fault.Recordable, error) {
	if len(plan.Remote) == 0 {
		return nil, nil
	}
	steps := slices.Clone(plan.Remote)
	if name == "server-kill-1" || name == "server-kill-2" {
		targets, err := e.etcdLeaderFirst(ctx, nodes)
		if err != nil {
			return nil, fmt.Errorf("fault %s: %w", name, err)
		}
		if len(targets) < len(steps) {
			return nil, fmt.Errorf("fault %s: %d servers, %d to kill", name, len(targets), len(steps))
		}
		e.Log.Info("servers to kill", "fault", name, "targets", names(targets[:len(steps)]), "why", "the first holds the etcd leader")
		for i := range steps {
			steps[i] = fault.ServiceSteps(e.Rack, topology.ServiceServer, targets[i].Name())[0]
		}
	}
	return fault.NewRemote(name, e.Nodes, e.Log, steps...), nil
}

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
