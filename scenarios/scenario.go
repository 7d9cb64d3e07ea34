// Package scenarios turns a row of the impact matrix into a drill: the steady
// state, the fault held while every probe samples, the revert, the recovery and
// the verdict of every cell. Run does it and returns what it saw; ScenarioSpec
// wires Run into a ginkgo spec that asserts (cluster-api's QuickStartSpec
// pattern: the _test.go files of the suites only wire inputs).
//
// impact-matrix.yaml beside this file is the documented matrix, every row with
// its source; deviations-<provider>.yaml (deviations-<provider>-k3s.yaml for
// a K3s rack) are the known differences of an environment, each with its reason.
package scenarios

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/probe"
	"rackdrill.dev/rackdrill/harness/rackstate"
	"rackdrill.dev/rackdrill/harness/runrecord"
)

// ScenarioInput is everything one drill needs.
type ScenarioInput struct {
	// Row is the matrix row: the promises and the budgets.
	Row        *matrix.Row
	Deviations *matrix.Deviations
	// NotApplicable, when set, is why the row's fault does not exist on this
	// rack or provider: the row is reported as such, never as held.
	NotApplicable string
	// Build binds the fault to its targets. It is called once the steady state
	// is green, so that targets that depend on the rack's state (the etcd
	// leader) are chosen then.
	Build func(ctx context.Context) (fault.Recordable, error)
	// Chosen, when set, gives the row to judge against once the fault is
	// built and its machines chosen: the derived promises of that choice
	// (promises.Derivation.ForTargets), stricter than Row, which holds for
	// every choice. nil keeps Row.
	Chosen func(f fault.Recordable) *matrix.Row
	// Effect, when set, gives the effect the built fault must be seen to
	// have once injected (fault.EffectOf): not seen within its budget, the
	// drill is broken ("the fault did not take effect"), whatever the probes
	// said and whatever the deviations declare.
	Effect func(f fault.Recordable) (fault.Effect, error)
	// Conditions, when set, observes before the fault goes in what the
	// deviations may name in their when (matrix.Conditions): where the
	// tunnel client runs against the machines the built fault takes. A
	// condition it could not observe is absent, and a deviation naming it
	// does not apply.
	Conditions func(ctx context.Context, f fault.Recordable) (map[string]bool, error)
	// NodeGrace is the rack's node-monitor-grace-period, which deviations
	// bound their outages by ("node-grace+15s"); matrix.DefaultNodeGrace
	// when zero.
	NodeGrace time.Duration
	// Guard journals and always reverts the fault.
	Guard *fault.Guard
	// Probes are sampled throughout; Unprobed names the matrix probes this rack
	// does not have, with the reason.
	Probes   []probe.Probe
	Unprobed map[string]string
	// Data, when set, writes its records in the steady state, before the fault.
	Data *probe.Data
	// Course is how long the fault may run its course after the
	// observation (a fault.Awaiter's AwaitLimit: the rehearsed upgrade), for
	// the sampler's bounds; 0 for a fault held for the observation only.
	Course time.Duration
	// Interval and Timeout of the sampler (the topology's spec.probes).
	Interval time.Duration
	Timeout  time.Duration
	// Snapshot, when set, reads the rack's state in the steady state and again
	// after the recovery: any difference left (a machine still down, the VIP
	// on the BACKUP, a workload not restored) fails the drill.
	Snapshot func(ctx context.Context) (rackstate.Snapshot, error)
	// OnSteady, when set, is given the steady-state snapshot before the fault
	// goes in (the framework keeps it for `rackdrill recover`).
	OnSteady func(rackstate.Snapshot) error
	// ResidueTimeout is how long the rack may take to look as it did.
	ResidueTimeout time.Duration
	// Dump, when set, writes what an SRE reads after a failed drill; it
	// returns where.
	Dump func(ctx context.Context, why string) (string, error)
	// Phase, when set, is told each phase as the drill enters it; Live, each
	// change of the probes' states (progress).
	Phase func(phase string)
	Live  func(states map[string]bool)
	Log   logr.Logger
}

// Check is one of a drill's promises besides the matrix's cells, as run.json
// records it.
type Check = runrecord.DrillCheck

// Outcome is what one drill observed.
type Outcome struct {
	Result    matrix.RowResult `json:"result"`
	Timelines probe.Timelines  `json:"timelines"`
	// SteadyAt is when every probe had been green for the settle window.
	SteadyAt time.Time `json:"steadyAt"`
	// Checks are the drill's other promises and how they went.
	Checks []Check `json:"checks,omitempty"`
	// Details the fault reports about itself (the UPS drill's halts).
	Details any `json:"details,omitempty"`
	// Steps are the steps of a fault that runs its course in steps
	// (fault.Stepped: the rehearsed upgrade).
	Steps []runrecord.Step `json:"steps,omitempty"`
	// Effect is whether the fault was seen to take effect, and when.
	Effect *fault.EffectResult `json:"effect,omitempty"`
	// Dump is where the artifacts of a failed drill are.
	Dump string `json:"dump,omitempty"`
	// Error is why the drill itself failed (not steady, injection failed,
	// interrupted, revert failed); the verdict is then matrix.Errored.
	Error string `json:"error,omitempty"`
	// RevertError is why the fault could not be reverted: the rack is not in
	// its steady state and `rackdrill recover` must finish the job.
	RevertError string `json:"revertError,omitempty"`
	// RevertErr is RevertError as an error, for the spec.
	RevertErr error `json:"-"`
}

// ErrNotSteady is returned when the rack was not green before the fault: nothing
// was injected.
var ErrNotSteady = errors.New("the rack is not in its steady state")

// Failed reports whether the drill broke a promise (a broken cell or check)
// or could not be carried out.
func (o *Outcome) Failed() bool {
	if o.Result.Verdict == matrix.Broken || o.Result.Verdict == matrix.Errored {
		return true
	}
	for _, c := range o.Checks {
		if !c.OK {
			return true
		}
	}
	return false
}

func (in *ScenarioInput) phase(p string) {
	if in.Phase != nil {
		in.Phase(p)
	}
}

func (in *ScenarioInput) validate() error {
	var missing []string
	if in.Row == nil {
		missing = append(missing, "Row")
	}
	if in.NotApplicable == "" {
		if in.Build == nil {
			missing = append(missing, "Build")
		}
		if in.Guard == nil {
			missing = append(missing, "Guard")
		}
		if len(in.Probes) == 0 {
			missing = append(missing, "Probes")
		}
		if in.Interval <= 0 || in.Timeout <= 0 {
			missing = append(missing, "Interval/Timeout")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("scenario input lacks %s", strings.Join(missing, ", "))
	}
	return nil
}

// samplingLimit is the longest a drill samples: the steady state, the
// fault and its course, the recovery and its settle window, twice the
// recovery budget for the steady state's own wait.
func (in *ScenarioInput) samplingLimit() time.Duration {
	r := in.Row
	return 2*r.Recovery.Duration + r.Settle.Duration + r.Observe.Duration + in.Course + r.Settled()
}

func (in *ScenarioInput) probeNames() []string {
	var out []string
	for _, p := range in.Probes {
		out = append(out, p.Name())
	}
	return out
}

// Run drills one row:
//  1. every probe green for the row's settle window (else ErrNotSteady, and
//     nothing is injected);
//  2. the data probe writes its records;
//  3. the fault is built, journaled and injected under the guard, which reverts
//     it however this function ends;
//  4. every probe is sampled through the observation window;
//  5. after the revert, sampling goes on until every probe is green again (or
//     the recovery budget ends);
//  6. every cell is evaluated against the timelines.
//
// A drill that returns an error is recorded as failed: its outcome carries the
// error (and the revert's), and its verdict is matrix.Errored whatever its
// cells said.
func Run(ctx context.Context, in ScenarioInput) (out Outcome, err error) {
	if err := in.validate(); err != nil {
		return Outcome{}, err
	}
	defer func() {
		if err == nil {
			return
		}
		out.Error = err.Error()
		if out.RevertErr != nil {
			out.RevertError = out.RevertErr.Error()
		}
		row := in.Row
		if len(out.Result.Cells) == 0 {
			// Errored before its cells were judged: each says so.
			out.Result = matrix.ErroredRow(row, out.Error)
		}
		out.Result.Verdict = matrix.Errored
	}()
	row := in.Row
	if in.NotApplicable != "" {
		return Outcome{Result: matrix.NotApplicableRow(row, in.NotApplicable)}, nil
	}
	log := in.Log.WithValues("fault", row.Fault)
	sampler := probe.NewSampler(in.Probes, probe.WithInterval(in.Interval), probe.WithTimeout(in.Timeout),
		probe.WithSamplerLogger(log),
		// Bounded: the longest this drill may take, and a count to match.
		probe.WithLimits(in.samplingLimit(), int(in.samplingLimit()/in.Interval)+10))
	stop := sampler.Start(ctx)
	stopped := false
	defer func() {
		if !stopped {
			out.Timelines = stop()
		}
	}()

	if in.Live != nil {
		liveCtx, stopLive := context.WithCancel(ctx)
		defer stopLive()
		go watchLive(liveCtx, sampler, in.Live)
	}
	log.Info("waiting for the steady state", "settle", row.Settle.Duration)
	in.phase("steady state")
	// The data probe is red until its records are written, which needs the
	// rest of the rack green: it joins once they are.
	steadyProbes := in.probeNames()
	if in.Data != nil {
		steadyProbes = slices.DeleteFunc(steadyProbes, func(n string) bool { return n == in.Data.Name() })
	}
	steadyAt, err := waitGreen(ctx, sampler, steadyProbes, row.Settle.Duration, row.Recovery.Duration+row.Settle.Duration, time.Time{})
	if err != nil {
		return out, fmt.Errorf("%w before %s: %v", ErrNotSteady, row.Fault, err)
	}
	out.SteadyAt = steadyAt
	if in.Data != nil {
		if err := in.Data.Write(ctx); err != nil {
			return out, fmt.Errorf("%w before %s: %v", ErrNotSteady, row.Fault, err)
		}
		if _, err := waitGreen(ctx, sampler, in.probeNames(), 0, 30*time.Second, time.Time{}); err != nil {
			return out, fmt.Errorf("%w before %s: after writing the data records: %v", ErrNotSteady, row.Fault, err)
		}
	}
	var before rackstate.Snapshot
	if in.Snapshot != nil {
		if before, err = steadySnapshot(ctx, in, log, row.Recovery.Duration); err != nil {
			return out, fmt.Errorf("%w before %s: %v", ErrNotSteady, row.Fault, err)
		}
		if in.OnSteady != nil {
			if err := in.OnSteady(before); err != nil {
				return out, fmt.Errorf("keep the steady state before %s: %w", row.Fault, err)
			}
		}
	}
	f, err := in.Build(ctx)
	if err != nil {
		return out, fmt.Errorf("build fault %s: %w", row.Fault, err)
	}
	if in.Chosen != nil {
		if r := in.Chosen(f); r != nil {
			row = r
		}
	}
	var effect *fault.Effect
	var effectBefore string
	if in.Effect != nil {
		e, err := in.Effect(f)
		if err != nil {
			return out, fmt.Errorf("effect of fault %s: %w", row.Fault, err)
		}
		effect = &e
		// The target must answer before the fault, or its silence after
		// proves nothing: nothing is injected.
		if effectBefore, err = e.BeforeFault(ctx); err != nil {
			return out, fmt.Errorf("%w before %s: %v", ErrNotSteady, row.Fault, err)
		}
	}
	settings := matrix.Settings{NodeGrace: in.NodeGrace}
	if in.Conditions != nil {
		conds, err := in.Conditions(ctx, f)
		if err != nil {
			// Not observed: a deviation naming one does not apply, and the
			// verdict says so.
			log.Info("could not observe the deviations' conditions before the fault", "err", err.Error())
		}
		settings.Conditions = conds
	}
	marked := &markedFault{Recordable: f}
	awaiter, _ := f.(fault.Awaiter)
	holdFor := row.Observe.Duration + in.Timeout + row.Recovery.Duration
	if awaiter != nil {
		holdFor += awaiter.AwaitLimit()
	}
	var w matrix.Window
	in.phase("injecting")
	holdErr := in.Guard.Hold(ctx, marked, holdFor, func(ctx context.Context) error {
		w.InPlace = time.Now()
		log.Info("fault in place; observing", "observe", row.Observe.Duration)
		in.phase("fault in place")
		effected := make(chan fault.EffectResult, 1)
		stopWatch := make(chan struct{})
		if effect != nil {
			go func() {
				r := effect.Wait(ctx, marked.injectedAt)
				r.Before = effectBefore
				if r.Seen {
					log.Info("the fault took effect", "effect", r.What, "after", r.After.Round(100*time.Millisecond))
				} else {
					log.Info("THE FAULT DID NOT TAKE EFFECT", "effect", r.What, "within", r.Within, "seen instead", r.Detail)
				}
				r = effect.Keep(ctx, marked.injectedAt, r, stopWatch)
				if r.Undone != "" {
					log.Info("THE FAULT WAS UNDONE while it was meant to be in place", "after", r.UndoneAfter.Round(100*time.Millisecond), "seen", r.Undone)
				}
				effected <- r
			}()
		}
		awaited := make(chan error, 1)
		if awaiter != nil {
			go func() { awaited <- awaiter.Await(ctx) }()
		} else {
			awaited <- nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(row.Observe.Duration):
		}
		if effect != nil {
			// Within the fault window: a budget longer than the observation
			// holds the fault until it ends; a held effect is looked at
			// until now, the revert.
			close(stopWatch)
			r := <-effected
			out.Effect = &r
		}
		aerr := <-awaited
		if awaiter != nil {
			c := Check{ID: "course", Name: row.Fault + " runs its course", OK: aerr == nil, Took: time.Since(marked.injectedAt)}
			if aerr != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				c.Detail = aerr.Error()
			}
			out.Checks = append(out.Checks, c)
		}
		w.Revert = time.Now()
		in.phase("reverting")
		return nil
	})
	if d, ok := f.(interface{ Halts() []fault.HaltRecord }); ok {
		out.Details = d.Halts()
	}
	if st, ok := f.(Stepped); ok {
		out.Steps = st.Steps()
	}
	var excused map[string][]matrix.Interval
	if ex, ok := f.(Excuser); ok {
		excused = ex.Excused()
	}
	w.Inject = marked.injectedAt
	if w.Revert.IsZero() {
		w.Revert = time.Now()
	}
	if holdErr != nil {
		// A failed revert still leaves timelines worth judging; anything else
		// (the fault never went in, the run was interrupted) ends the drill.
		var re *fault.RevertError
		if !errors.As(holdErr, &re) || w.Inject.IsZero() {
			return out, holdErr
		}
		out.RevertErr = re
	}
	log.Info("fault reverted; waiting for recovery", "budget", row.Recovery.Duration)
	in.phase("recovering")
	// Recovery: until every probe has been green for the settle window with
	// several answers, or the budget and the window end; the evaluation says
	// which probe did not make it, or did not stay.
	settle := row.Settled()
	_, _ = waitGreen(ctx, sampler, in.probeNames(), settle, row.Recovery.Duration+settle, w.Revert)
	w.End = time.Now()
	out.Timelines = stop()
	stopped = true
	judging := matrix.Judging{Deviations: in.Deviations, Unprobed: in.Unprobed, MaxGap: sampler.MaxGaps(), Excused: excused, Settings: settings}
	if out.Effect != nil && !out.Effect.Seen {
		judging.Deviations = nil // no deviation excuses a fault that did nothing
	}
	out.Result = matrix.EvaluateRow(row, out.Timelines.Samples(), w, judging)
	if e := out.Effect; e != nil {
		c := Check{ID: "effect", Name: "the fault took effect: " + e.What, OK: e.Seen, Took: e.After,
			Detail: fmt.Sprintf("seen %s after the injection (budget %s)", e.After.Round(100*time.Millisecond), e.Within)}
		if !e.Seen {
			c.Detail = fmt.Sprintf("fault did not take effect: not seen within %s of the injection; seen instead: %s", e.Within, e.Detail)
			out.Result.Verdict = matrix.Broken
		}
		checks := []Check{c}
		if e.Seen && len(e.Looks) > 0 || e.Undone != "" {
			held := Check{ID: "held", Name: "the fault stayed in place until the revert", OK: e.Undone == "",
				Detail: fmt.Sprintf("checked %d times, every %s, until the revert", len(e.Looks), fault.EffectRecheck)}
			if e.Undone != "" {
				held.Detail = fmt.Sprintf("undone %s after the injection, while it was meant to be in place: %s; the cells were judged against a fault that was gone",
					e.UndoneAfter.Round(100*time.Millisecond), e.Undone)
				out.Result.Verdict = matrix.Broken
			}
			checks = append(checks, held)
		}
		out.Checks = append(checks, out.Checks...)
	}
	for _, c := range out.Checks {
		if c.ID == "course" && !c.OK {
			// Its promises were not exercised to the end: what the probes
			// saw of a fault that stopped partway is no verdict of held.
			out.Result.Verdict = matrix.Broken
		}
	}
	if in.Snapshot != nil && ctx.Err() == nil {
		in.phase("residue check")
		limit := in.ResidueTimeout
		if limit <= 0 {
			limit = 2 * time.Minute
		}
		started := time.Now()
		diff, serr := rackstate.WaitSame(ctx, before, limit, in.Snapshot)
		c := Check{ID: "residue", Name: "residue: the rack as it was before the fault", OK: len(diff) == 0 && serr == nil, Took: time.Since(started)}
		if serr != nil {
			diff = append(diff, "state of the rack: "+serr.Error())
		}
		c.Detail = strings.Join(diff, "; ")
		out.Checks = append(out.Checks, c)
	}
	return out, errors.Join(holdErr, ctx.Err())
}

// Excuser is a fault that observes what its row's cells may name as
// exceptions (matrix.Cell.Except): the spans it saw, by exception.
type Excuser interface {
	Excused() map[string][]matrix.Interval
}

// Stepped is a fault that runs its course in steps (the rehearsed upgrade):
// the steps it went through, each with its start and end.
type Stepped interface {
	Steps() []runrecord.Step
}

// markedFault records when the injection began: the start of the fault window.
type markedFault struct {
	fault.Recordable
	injectedAt time.Time
}

// RevertLimit passes on the fault's own revert limit to the guard.
func (m *markedFault) RevertLimit() time.Duration {
	if rl, ok := m.Recordable.(fault.RevertLimiter); ok {
		return rl.RevertLimit()
	}
	return 0
}

func (m *markedFault) Inject(ctx context.Context) error {
	m.injectedAt = time.Now()
	return m.Recordable.Inject(ctx)
}
