package fault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/rackclient"
)

// Fault is one reversible disturbance, its targets bound when it is built.
type Fault interface {
	// Name is the matrix row, e.g. "server-kill-1".
	Name() string
	Inject(ctx context.Context) error
	// Revert is idempotent and succeeds after a partial or absent Inject.
	Revert(ctx context.Context) error
}

// Recordable is a fault that can be written to the ledger and rebuilt from it by
// another process. Every fault the harness injects is Recordable: a fault that
// could not be reverted after a crash is not injected.
type Recordable interface {
	Fault
	// Record returns the registered kind and the parameters its Rebuilder needs.
	Record() (kind string, params any)
}

// RevertLimiter is a fault whose revert may take longer than the guard's
// default (the UPS drill powers every machine on and waits for each).
type RevertLimiter interface {
	RevertLimit() time.Duration
}

// DefaultRevertTimeout bounds a revert unless the fault says it needs more:
// starting a control-plane node container and its systemd takes tens of
// seconds.
const DefaultRevertTimeout = 5 * time.Minute

// LongestRevert is the longest any built-in fault's revert may take, the
// power drill's without its battery budget: see RevertLimitFor, which a
// drill's interrupt grace is computed from.
func LongestRevert() time.Duration { return max(DefaultRevertTimeout, upsRevertLimit) }

// RevertLimitFor is the longest the revert of the matrix row fault may take
// on a rack whose UPS battery lasts battery: the power drill's own limit
// (every machine powered on, the battery budget, the halt margin), or the
// guard's default for every other row.
func RevertLimitFor(fault string, battery time.Duration) time.Duration {
	if fault == "ups-power-loss" {
		return max(DefaultRevertTimeout, upsRevertLimit+battery+upsHaltMargin)
	}
	return DefaultRevertTimeout
}

// Env is what rebuilding a fault from the ledger may use.
type Env struct {
	Nodes cluster.NodeLister
	// Kube reaches the rack's API, for faults on cluster objects.
	Kube KubeClient
	Log  logr.Logger
}

// Rebuilder turns a ledger entry's parameters back into the fault.
type Rebuilder func(ctx context.Context, env Env, fault string, params json.RawMessage) (Fault, error)

var (
	registryMu sync.Mutex
	registry   = map[string]Rebuilder{}
)

// Register makes kind revertible by `rackdrill recover`. Built-in kinds register
// themselves in init.
func Register(kind string, r Rebuilder) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[kind]; dup {
		panic("fault: kind registered twice: " + kind)
	}
	registry[kind] = r
}

// Kinds lists the registered kinds.
func Kinds() []string {
	registryMu.Lock()
	defer registryMu.Unlock()
	var out []string
	for k := range registry {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func rebuild(ctx context.Context, env Env, e Entry) (Fault, error) {
	registryMu.Lock()
	r, ok := registry[e.Kind]
	registryMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("fault %s (%s): unknown kind %q (known: %v)", e.Fault, e.ID, e.Kind, Kinds())
	}
	return r(ctx, env, e.Fault, e.Params)
}

// Guard injects faults so that they are always reverted.
type Guard struct {
	ledger        *Ledger
	rack          string
	provider      string
	topology      string
	log           logr.Logger
	revertTimeout time.Duration
	signals       []os.Signal
}

// GuardOption configures a Guard.
type GuardOption func(*Guard)

// WithLogger sets the logger; the default discards.
func WithLogger(l logr.Logger) GuardOption { return func(g *Guard) { g.log = l } }

// WithRack records which rack and provider the faults are injected into.
func WithRack(rack, provider string) GuardOption {
	return func(g *Guard) { g.rack, g.provider = rack, provider }
}

// WithTopology records the rack's topology file, which `rackdrill recover`
// needs to reach a real rack's machines again.
func WithTopology(path string) GuardOption { return func(g *Guard) { g.topology = path } }

// WithRevertTimeout bounds the revert (default DefaultRevertTimeout; a fault
// that is a RevertLimiter gets the longer of the two).
func WithRevertTimeout(d time.Duration) GuardOption { return func(g *Guard) { g.revertTimeout = d } }

// NewGuard returns a Guard journaling into l.
func NewGuard(l *Ledger, opts ...GuardOption) *Guard {
	g := &Guard{ledger: l, log: logr.Discard(), revertTimeout: DefaultRevertTimeout,
		signals: []os.Signal{os.Interrupt, syscall.SIGTERM}}
	for _, o := range opts {
		o(g)
	}
	return g
}

// ErrLedgerNotEmpty is returned when a previous run left faults in place.
var ErrLedgerNotEmpty = errors.New("faults of an earlier run may still be in place: run `rackdrill recover` first")

// Hold injects f, runs observe while the fault is in place, and reverts f
// whatever happens: observe returns or fails, panics, the context ends, the
// timeout (if positive) passes, or the process gets SIGINT or SIGTERM. The fault
// is in the ledger from before the injection until after a successful revert, so
// a SIGKILL'd run is undone by `rackdrill recover`.
//
// A second SIGINT/SIGTERM while reverting abandons the revert; the ledger keeps
// the fault for `rackdrill recover`.
func (g *Guard) Hold(ctx context.Context, f Recordable, timeout time.Duration, observe func(ctx context.Context) error) (err error) {
	live, lerr := g.ledger.Entries()
	if lerr != nil {
		return fmt.Errorf("read fault ledger %s: %w", g.ledger.Dir(), lerr)
	}
	if len(live) > 0 {
		return fmt.Errorf("%w (%d in %s, the first: %s from pid %d)", ErrLedgerNotEmpty, len(live), g.ledger.Dir(), live[0].Fault, live[0].PID)
	}
	kind, params := f.Record()
	raw, merr := json.Marshal(params)
	if merr != nil {
		return fmt.Errorf("record fault %s: %w", f.Name(), merr)
	}
	host, _ := os.Hostname()
	e := Entry{ID: newID(f.Name()), Fault: f.Name(), Kind: kind, Params: raw, Rack: g.rack, Provider: g.provider, Topology: g.topology,
		InjectedAt: time.Now(), PID: os.Getpid(), Host: host}
	if err := g.ledger.Record(e); err != nil {
		return err
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, g.signals...)
	defer signal.Stop(sigs)
	obsCtx, cancelObs := context.WithCancelCause(ctx)
	defer cancelObs(nil)
	if timeout > 0 {
		var cancelT context.CancelFunc
		obsCtx, cancelT = context.WithTimeoutCause(obsCtx, timeout, fmt.Errorf("fault %s: held for its %s timeout", f.Name(), timeout))
		defer cancelT()
	}
	go func() {
		select {
		case s := <-sigs:
			g.log.Info("signal received: reverting the fault", "signal", s.String(), "fault", f.Name())
			cancelObs(fmt.Errorf("fault %s: interrupted by %s", f.Name(), s))
		case <-obsCtx.Done():
		}
	}()

	// The revert runs on every way out of this function, panics included.
	defer func() {
		p := recover()
		cancelObs(nil) // stop the observe-phase signal watcher: a second signal is the revert's
		rerr := g.revert(ctx, f, e, sigs)
		if p != nil {
			if rerr != nil {
				g.log.Error(rerr, "revert after panic failed", "fault", f.Name())
			}
			panic(p)
		}
		if cause := context.Cause(obsCtx); err == nil && cause != nil && !errors.Is(cause, context.Canceled) {
			err = cause
		}
		err = errors.Join(err, rerr)
	}()

	g.log.Info("injecting fault", "fault", f.Name(), "ledger", e.ID)
	if ierr := f.Inject(obsCtx); ierr != nil {
		return fmt.Errorf("inject fault %s: %w", f.Name(), ierr)
	}
	if observe != nil {
		if oerr := observe(obsCtx); oerr != nil {
			if cause := context.Cause(obsCtx); cause != nil && errors.Is(oerr, obsCtx.Err()) {
				return cause
			}
			return oerr
		}
	}
	return nil
}

// revert runs f.Revert on a context of its own (the caller's may be the very
// thing that ended), then clears the ledger entry.
func (g *Guard) revert(parent context.Context, f Fault, e Entry, sigs <-chan os.Signal) error {
	limit := g.revertTimeout
	if rl, ok := f.(RevertLimiter); ok {
		limit = max(limit, rl.RevertLimit())
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), limit)
	defer cancel()
	go func() {
		select {
		case s := <-sigs:
			g.log.Info("second signal: abandoning the revert; `rackdrill recover` will finish it", "signal", s.String())
			cancel()
		case <-ctx.Done():
		}
	}()
	g.log.Info("reverting fault", "fault", f.Name())
	if err := f.Revert(ctx); err != nil {
		return &RevertError{Fault: f.Name(), Ledger: g.ledger.Dir(), Err: err}
	}
	return g.ledger.Clear(e.ID)
}

// RevertError is a fault that could not be reverted: it may still be in place,
// and it stays in the ledger for `rackdrill recover`.
type RevertError struct {
	Fault  string
	Ledger string
	Err    error
}

func (e *RevertError) Error() string {
	return fmt.Sprintf("revert fault %s (still in the ledger %s; `rackdrill recover` retries): %v", e.Fault, e.Ledger, e.Err)
}

func (e *RevertError) Unwrap() error { return e.Err }

// Recovered is one ledger entry `Recover` dealt with.
type Recovered struct {
	Entry Entry
	Err   error
}

// InFlight bounds how long an operation sent by a run that was killed may
// still be on its way (a docker kill, an API patch, an SSH command: each is
// bounded by its own timeout, rackclient.FaultTimeout for the API). Recover
// does not revert a fault injected more recently than that until it has
// passed, so that no such operation lands after the revert.
var InFlight = rackclient.FaultTimeout

// Recover reverts every fault in the ledger, oldest first, and clears each one
// that reverted. It refuses entries whose process still runs on this machine:
// that run is still holding its fault and will revert it itself.
func Recover(ctx context.Context, l *Ledger, env Env) ([]Recovered, error) {
	entries, err := l.Entries()
	if len(entries) > 0 {
		newest := entries[len(entries)-1].InjectedAt
		for _, e := range entries {
			if e.InjectedAt.After(newest) {
				newest = e.InjectedAt
			}
		}
		if wait := time.Until(newest.Add(InFlight)); wait > 0 {
			env.Log.Info("waiting for the operations of the killed run to land before reverting", "wait", wait.Round(100*time.Millisecond))
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(wait):
			}
		}
	}
	var out []Recovered
	host, _ := os.Hostname()
	for _, e := range entries {
		if e.Host == host && e.PID != os.Getpid() && processAlive(e.PID) {
			out = append(out, Recovered{Entry: e, Err: fmt.Errorf("fault %s is held by running process %d; stop that run (Ctrl-C reverts) instead", e.Fault, e.PID)})
			continue
		}
		f, rerr := rebuild(ctx, env, e)
		if rerr == nil {
			env.Log.Info("reverting fault left by an earlier run", "fault", e.Fault, "injected", e.InjectedAt.Format(time.RFC3339), "pid", e.PID)
			if rerr = f.Revert(ctx); rerr != nil {
				rerr = fmt.Errorf("revert fault %s: %w", e.Fault, rerr)
			}
		}
		if rerr == nil {
			rerr = l.Clear(e.ID)
		}
		out = append(out, Recovered{Entry: e, Err: rerr})
	}
	for _, r := range out {
		err = errors.Join(err, r.Err)
	}
	return out, err
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	if p.Signal(syscall.Signal(0)) != nil {
		return false
	}
	// A zombie answers signal 0 but holds nothing.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	for i := len(stat) - 1; i > 0; i-- {
		if stat[i] == ')' && i+2 < len(stat) {
			return stat[i+2] != 'Z'
		}
	}
	return true
}
