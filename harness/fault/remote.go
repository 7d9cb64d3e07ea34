package fault

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/topology"
)

// RemoteStep is one machine's part of a fault on a real rack: a shell command
// that takes a service down and one that brings it back (idempotent).
type RemoteStep struct {
	Node   string `json:"node"`
	Inject string `json:"inject"`
	Revert string `json:"revert"`
	// DeadMan is the delay of the machine's dead-man timer.
	DeadMan time.Duration `json:"deadMan"`
	// Timer is how that timer runs: systemd-run (empty: the default) or a
	// detached shell timer, for a machine without systemd.
	Timer topology.DeadManTimer `json:"timer,omitempty"`
}

// ServiceSteps are the steps that take service svc down on each node, with the
// commands and dead-man delays the topology gives them.
func ServiceSteps(r *topology.Rack, svc topology.Service, nodes ...string) []RemoteStep {
	var out []RemoteStep
	for _, n := range nodes {
		c := r.ServiceCommands(svc, n)
		out = append(out, RemoteStep{Node: n, Inject: c.Stop, Revert: c.Start, DeadMan: r.DeadMan(n), Timer: r.DeadManTimer(n)})
	}
	return out
}

// DeadManUnit is the prefix of the systemd units of a fault's dead-man
// timers: rackdrill-deadman-<id>-<generation>.timer.
func DeadManUnit(id string) string { return "rackdrill-deadman-" + id }

// Remote runs commands on real machines (sh -c over the provider's nodes),
// each machine guarded by a dead-man timer put there before its command runs:
// a transient systemd timer that runs the step's revert by itself when it
// fires. While the fault is held the harness re-arms every timer each third of
// its delay; when the harness disappears (SIGKILL, a lost laptop) the last
// timer fires within the delay. The timers are cancelled after a successful
// revert.
type Remote struct {
	name  string
	nodes cluster.NodeLister
	log   logr.Logger

	ID   string       `json:"id"`
	Cmds []RemoteStep `json:"steps"`

	mu      sync.Mutex
	gen     map[string]int // the armed generation per node
	stop    chan struct{}
	beating sync.WaitGroup
}

var _ Recordable = (*Remote)(nil)

// NewRemote builds a fault of steps run on the nodes nodes lists.
func NewRemote(name string, nodes cluster.NodeLister, log logr.Logger, steps ...RemoteStep) *Remote {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return &Remote{name: name, nodes: nodes, log: log, ID: hex.EncodeToString(b[:]), Cmds: steps, gen: map[string]int{}}
}

func (f *Remote) Name() string { return f.name }

// Record implements Recordable.
func (f *Remote) Record() (string, any) { return "remote", f }

func (f *Remote) node(ctx context.Context, name string) (cluster.Node, error) {
	all, err := f.nodes.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	ns, err := cluster.ByName(all, name)
	if err != nil {
		return nil, err
	}
	return ns[0], nil
}

func (f *Remote) unit(gen int) string { return fmt.Sprintf("%s-%d", DeadManUnit(f.ID), gen) }

// DeadManScript is what a machine's dead-man timer runs: the reverts of
// every step of the fault on that machine, the last step's first, each run
// even when one before it failed (the unit fails if any did). A machine
// whose keepalived and HAProxy were stopped gets both back.
func DeadManScript(steps []RemoteStep, node string) string {
	var b strings.Builder
	b.WriteString("rc=0")
	for i := len(steps) - 1; i >= 0; i-- {
		if steps[i].Node == node {
			fmt.Fprintf(&b, "; ( %s ) || rc=1", steps[i].Revert)
		}
	}
	b.WriteString("; exit $rc")
	return b.String()
}

// deadMan is a machine's dead-man delay: the shortest of its steps'.
func deadMan(steps []RemoteStep, node string) time.Duration {
	var d time.Duration
	for _, s := range steps {
		if s.Node == node && (d == 0 || s.DeadMan < d) {
			d = s.DeadMan
		}
	}
	return d
}

// machines are the fault's machines, each once, in the order of their first
// step.
func machines(steps []RemoteStep) []string {
	var out []string
	for _, s := range steps {
		if !slices.Contains(out, s.Node) {
			out = append(out, s.Node)
		}
	}
	return out
}

// timer is how a machine's dead-man timer runs (its first step's).
func timer(steps []RemoteStep, node string) topology.DeadManTimer {
	for _, s := range steps {
		if s.Node == node && s.Timer != "" {
			return s.Timer
		}
	}
	return topology.TimerSystemdRun
}

// ShellTimerDir is where a shell dead-man timer keeps its script and the
// process group to cancel: on disk, not /run, since a NAS appliance may not
// have it. A variable for the tests, which run the timer on this machine.
var ShellTimerDir = "/var/tmp/rackdrill-deadman"

// armCommand is the command that puts generation gen of a machine's
// dead-man timer on it.
func (f *Remote) armCommand(node string, gen int) []string {
	secs := int(deadMan(f.Cmds, node).Round(time.Second) / time.Second)
	if timer(f.Cmds, node) == topology.TimerShell {
		// A session of its own (setsid), so that the SSH session's end does
		// not take it along and its cancel kills the sleep with it; the
		// script is a file, so that no quoting is nested.
		unit := f.unit(gen)
		return []string{"sh", "-c", fmt.Sprintf(`set -e; d=%s; mkdir -p "$d"; printf '%%s
' %s > "$d/%s.sh"
nohup setsid sh -c 'sleep %d; sh "$1"; rm -f "$1" "$1.pid"' deadman "$d/%s.sh" </dev/null >/dev/null 2>&1 &
echo $! > "$d/%s.sh.pid"`, ShellTimerDir, exec.Quote(DeadManScript(f.Cmds, node)), unit, secs, unit, unit)}
	}
	return []string{"systemd-run", "--quiet", "--unit=" + f.unit(gen),
		"--description=rackdrill dead-man timer: reverts " + f.name + " if the harness is gone",
		fmt.Sprintf("--on-active=%ds", secs),
		"--timer-property=AccuracySec=1s",
		"/bin/sh", "-c", DeadManScript(f.Cmds, node)}
}

// disarmCommand cancels every dead-man timer of the fault on a machine (and
// forgets a timer that already fired).
func (f *Remote) disarmCommand(node string) []string {
	u := DeadManUnit(f.ID)
	if timer(f.Cmds, node) == topology.TimerShell {
		return []string{"sh", "-c", cancelShell(u + "-*")}
	}
	return []string{"sh", "-c", fmt.Sprintf("systemctl stop '%s-*.timer' '%s-*.service'; systemctl reset-failed '%s-*' 2>/dev/null; true", u, u, u)}
}

// cancelShell kills the shell timers matching glob (their whole session:
// the sleep goes too) and removes their files.
func cancelShell(glob string) string {
	return fmt.Sprintf(`for p in %s/%s.sh.pid; do [ -f "$p" ] || continue; kill -TERM -- "-$(cat "$p")" 2>/dev/null; rm -f "$p" "${p%%.pid}"; done; true`, ShellTimerDir, glob)
}

// arm puts the next generation of a machine's timer on it, then cancels the
// previous one (two timers for a moment: the reverts are idempotent).
func (f *Remote) arm(ctx context.Context, n cluster.Node) error {
	node := n.Name()
	f.mu.Lock()
	prev := f.gen[node]
	next := prev + 1
	f.mu.Unlock()
	argv := f.armCommand(node, next)
	if err := exec.Run(n.Command(ctx, argv[0], argv[1:]...)); err != nil {
		return fmt.Errorf("node %s: put the dead-man timer (%s): %w", node, timer(f.Cmds, node), err)
	}
	f.mu.Lock()
	f.gen[node] = next
	f.mu.Unlock()
	if prev > 0 {
		cancel := []string{"systemctl", "stop", f.unit(prev) + ".timer"}
		if timer(f.Cmds, node) == topology.TimerShell {
			cancel = []string{"sh", "-c", cancelShell(f.unit(prev))}
		}
		if err := exec.Run(n.Command(ctx, cancel[0], cancel[1:]...)); err != nil {
			f.log.Info("could not cancel the previous dead-man timer (it reverts nothing the next one would not)", "node", node, "unit", f.unit(prev), "err", err.Error())
		}
	}
	return nil
}

// Inject arms each machine's timer, then runs its command, in order, and
// stops at the first failure (the guard reverts what was done). Then it keeps
// the timers armed until Revert.
func (f *Remote) Inject(ctx context.Context) error {
	armed := map[string]bool{}
	for _, s := range f.Cmds {
		n, err := f.node(ctx, s.Node)
		if err != nil {
			return err
		}
		if !armed[s.Node] {
			// Armed with every step of this machine, before the first runs.
			if err := f.arm(ctx, n); err != nil {
				return err
			}
			armed[s.Node] = true
		}
		if s.Inject == "" {
			continue // a guard's timer only (APIGuard)
		}
		var stderr strings.Builder
		if err := n.Command(ctx, "sh", "-c", s.Inject).SetStderr(&stderr).Run(); err != nil {
			return fmt.Errorf("node %s: %q: %w %s", s.Node, s.Inject, err, strings.TrimSpace(stderr.String()))
		}
	}
	f.stop = make(chan struct{})
	f.beating.Add(1)
	go f.heartbeat(context.WithoutCancel(ctx))
	return nil
}

// heartbeat re-arms every machine's timer each third of its delay.
func (f *Remote) heartbeat(ctx context.Context) {
	defer f.beating.Done()
	period := f.Cmds[0].DeadMan
	for _, s := range f.Cmds {
		period = min(period, s.DeadMan)
	}
	tick := time.NewTicker(period / 3)
	defer tick.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-tick.C:
		}
		for _, node := range machines(f.Cmds) {
			actx, cancel := context.WithTimeout(ctx, period/3)
			n, err := f.node(actx, node)
			if err == nil {
				err = f.arm(actx, n)
			}
			cancel()
			if err != nil {
				f.log.Error(err, "could not re-arm the dead-man timer: it will revert the fault by itself if this goes on", "node", node, "delay", deadMan(f.Cmds, node))
			}
		}
	}
}

// stopHeartbeat stops re-arming the timers.
func (f *Remote) stopHeartbeat() {
	if f.stop != nil {
		close(f.stop)
		f.beating.Wait()
		f.stop = nil
	}
}

// cancel stops the heartbeat and cancels every machine's timer, reverting
// nothing (an APIGuard's faults revert themselves).
func (f *Remote) cancel(ctx context.Context) error {
	f.stopHeartbeat()
	return errors.Join(f.disarm(ctx, nil)...)
}

// disarm cancels the timers of the fault's machines, but those of keep.
func (f *Remote) disarm(ctx context.Context, keep map[string]bool) []error {
	var errs []error
	for _, node := range machines(f.Cmds) {
		if keep[node] {
			continue
		}
		n, err := f.node(ctx, node)
		if err == nil {
			argv := f.disarmCommand(node)
			err = exec.Run(n.Command(ctx, argv[0], argv[1:]...))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("node %s: cancel the dead-man timer %s: %w", node, DeadManUnit(f.ID), err))
		}
	}
	return errs
}

// Revert stops the heartbeat, runs every machine's revert (in reverse order,
// all of them even if one fails) and cancels the timers of the machines that
// reverted.
func (f *Remote) Revert(ctx context.Context) error {
	f.stopHeartbeat()
	var errs []error
	failed := map[string]bool{}
	for i := len(f.Cmds) - 1; i >= 0; i-- {
		s := f.Cmds[i]
		n, err := f.node(ctx, s.Node)
		if err == nil {
			var stderr strings.Builder
			if err = n.Command(ctx, "sh", "-c", s.Revert).SetStderr(&stderr).Run(); err != nil {
				err = fmt.Errorf("node %s: %q: %w %s", s.Node, s.Revert, err, strings.TrimSpace(stderr.String()))
			}
		}
		if err != nil {
			failed[s.Node] = true
			errs = append(errs, err)
		}
	}
	// A machine that did not revert keeps its timer.
	errs = append(errs, f.disarm(ctx, failed)...)
	return errors.Join(errs...)
}

func init() {
	Register("remote", func(ctx context.Context, env Env, name string, raw json.RawMessage) (Fault, error) {
		f := NewRemote(name, env.Nodes, env.Log)
		if err := json.Unmarshal(raw, f); err != nil {
			return nil, fmt.Errorf("fault %s: %w", name, err)
		}
		if f.ID == "" || len(f.Cmds) == 0 {
			return nil, fmt.Errorf("fault %s: ledger entry has no steps", name)
		}
		if env.Nodes == nil {
			return nil, fmt.Errorf("fault %s: no provider to reach its machines", name)
		}
		return f, nil
	})
}
