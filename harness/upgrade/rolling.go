package upgrade

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/preflight"
	"rackdrill.dev/rackdrill/harness/runrecord"
)

// Kind is the rolling upgrade's kind in the fault ledger, and its row in
// the rehearsal's matrix.
const Kind = "rolling-upgrade"

// AwaitLimit bounds a rehearsed upgrade: eight machines of a few minutes each.
const AwaitLimit = 90 * time.Minute

// Rolling is the rehearsed upgrade as a drill: the probes sample the rack
// while it runs its course (Await performs the runbook), and the drill's
// row judges what they saw. It has no revert: an upgrade is not undone, and
// the lab is left as it is (rackdrill down and up restore it).
type Rolling struct {
	lab *Lab
	rb  preflight.Runbook

	mu     sync.Mutex
	marks  []Mark
	leases []matrix.Interval
}

// NewRolling is the upgrade of the lab l along runbook rb.
func NewRolling(l *Lab, rb preflight.Runbook) *Rolling { return &Rolling{lab: l, rb: rb} }

// Name is the drill's row.
func (r *Rolling) Name() string { return Kind }

// Inject begins nothing: the upgrade runs in Await, while the fault is in place.
func (r *Rolling) Inject(context.Context) error { return nil }

// Await performs the runbook's machine steps, in order, stopping at the
// first that fails.
// The leader leases are read throughout (every second), so that the heal
// cell's exception excuses only the moves that happened.
func (r *Rolling) Await(ctx context.Context) error {
	lw := watchLeases(ctx, r.lab.Kube, time.Second)
	_, err := r.lab.Perform(ctx, r.rb, func(m Mark) {
		r.mu.Lock()
		r.marks = append(r.marks, m)
		r.mu.Unlock()
	})
	moves := lw.Stop(time.Now())
	r.mu.Lock()
	r.leases = moves
	r.mu.Unlock()
	return err
}

// Excused are the spans the upgrade observed, by the matrix's exception
// names: the leader leases' moves (matrix.ExceptLeaderElection).
func (r *Rolling) Excused() map[string][]matrix.Interval {
	r.mu.Lock()
	defer r.mu.Unlock()
	return map[string][]matrix.Interval{matrix.ExceptLeaderElection: append([]matrix.Interval(nil), r.leases...)}
}

// AwaitLimit bounds Await.
func (r *Rolling) AwaitLimit() time.Duration { return AwaitLimit }

// Revert does nothing: an upgrade has no revert.
func (r *Rolling) Revert(context.Context) error { return nil }

// Record is what the ledger keeps: the target release.
func (r *Rolling) Record() (string, any) {
	return Kind, rollingParams{From: r.rb.From, To: r.rb.To}
}

// Marks are the steps performed so far.
func (r *Rolling) Marks() []Mark {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Mark(nil), r.marks...)
}

// Steps are the steps performed, for run.json and the report's timeline.
func (r *Rolling) Steps() []runrecord.Step {
	var out []runrecord.Step
	for _, m := range r.Marks() {
		name := fmt.Sprintf("[%s] %s", m.Where, m.What)
		out = append(out, runrecord.Step{Name: name, Machine: m.Node, Start: m.Start, End: m.End, Error: m.Error})
	}
	return out
}

type rollingParams struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// ledgered is a rolling upgrade read back from the ledger by `rackdrill
// recover`: there is nothing to revert, and it says so.
type ledgered struct{ p rollingParams }

func (l ledgered) Name() string                 { return Kind }
func (l ledgered) Inject(context.Context) error { return nil }
func (l ledgered) Record() (string, any)        { return Kind, l.p }
func (l ledgered) Revert(context.Context) error { return nil }
func (l ledgered) String() string               { return "the lab's upgrade " + l.p.From + " -> " + l.p.To }

func init() {
	fault.Register(Kind, func(ctx context.Context, env fault.Env, name string, params json.RawMessage) (fault.Fault, error) {
		var p rollingParams
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, fmt.Errorf("%s: %w", Kind, err)
		}
		env.Log.Info("an upgrade has no revert: the lab stays as the interrupted upgrade left it (rackdrill down, then rackdrill up, restore it)",
			"from", p.From, "to", p.To)
		return ledgered{p}, nil
	})
}
