package framework

import (
	"context"
	"fmt"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/scenarios"
)

// DrillInput assembles the drill of one matrix row on this rack: whether the
// row applies (fault.PlanFor), the fault bound to the plan's targets, the guard
// journaling into the run's ledger, and the probes.
func (e *Env) DrillInput(row *matrix.Row) (scenarios.ScenarioInput, error) {
	in := scenarios.ScenarioInput{
		Row: row, Deviations: e.Deviations, Log: e.Log,
		Interval: e.Rack.Spec.Probes.Interval.Duration, Timeout: e.Rack.Spec.Probes.Timeout.Duration,
		Guard: fault.NewGuard(e.Ledger, fault.WithRack(e.Rack.Metadata.Name, string(e.Provider)), fault.WithLogger(e.Log)),
	}
	plan, err := fault.PlanFor(row.Fault, e.Rack, e.Provider)
	if err != nil {
		return in, err
	}
	if !plan.Applicable {
		in.NotApplicable = plan.Why
		return in, nil
	}
	if in.Probes, in.Unprobed, in.Data, err = e.probes(); err != nil {
		return in, fmt.Errorf("drill %s: %w", row.Fault, err)
	}
	in.Build = func(ctx context.Context) (fault.Recordable, error) { return e.buildFault(ctx, row.Fault, plan) }
	return in, nil
}

// buildFault binds a fault to the rack's nodes.
func (e *Env) buildFault(ctx context.Context, name string, plan fault.Plan) (fault.Recordable, error) {
	nodes, err := e.Nodes.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	switch name {
	case "lb-master-lost", "worker-lost":
		targets, err := cluster.ByName(nodes, plan.Targets...)
		if err != nil {
			return nil, fmt.Errorf("fault %s: %w", name, err)
		}
		return fault.NewNodePower(name, fault.PowerKill, targets...), nil
	case "cp-lb-lost", "tunnel-server-lost", "nfs-lost":
		targets, err := cluster.ByName(nodes, plan.Targets...)
		if err != nil {
			return nil, fmt.Errorf("fault %s: %w", name, err)
		}
		return fault.NewNodePower(name, fault.PowerStop, targets...), nil
	}
	return nil, fmt.Errorf("fault %s cannot be injected on provider %s by this version of rackdrill", name, e.Provider)
}
