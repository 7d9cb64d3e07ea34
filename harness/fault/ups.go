package fault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/poll"
)

// Awaiter is a fault that runs a course of its own once injected: the UPS
// drill, where the rack shuts itself down. The drill observes at least until
// Await returns; its error is a promise of the fault that broke (an unclean
// halt, the wrong order, past the budget).
type Awaiter interface {
	Await(ctx context.Context) error
	// AwaitLimit bounds Await.
	AwaitLimit() time.Duration
}

// UPSPowerLoss switches a NUT dummy-ups UPS to on-battery and then to low
// battery, so that upsmon on the UPS master runs the rack's shutdown; Await
// watches the machines halt, and Revert is the power coming back.
type UPSPowerLoss struct {
	name   string
	master cluster.Node
	stages [][]cluster.Node
	params upsParams
	// onBattery is when the UPS reported OB: the battery budget runs from it.
	onBattery time.Time
	halts     []HaltRecord
	// powerOn says, per machine of a real rack, how its power comes back
	// (the plan's words for its spec.nodes[].power).
	powerOn map[string]string
}

type upsParams struct {
	Master string        `json:"master"`
	UPS    string        `json:"ups"`
	Stages [][]string    `json:"stages"`
	Budget time.Duration `json:"budget"`
	// FSD, on a real rack, is the command that makes upsmon on the master
	// force the shutdown (upsmon -c fsd): the UPS itself is not touched.
	FSD string `json:"fsd,omitempty"`
	// Commands: the UPS is not NUT's (spec.ups.commands), and FSD is the
	// rack's own forced-shutdown command.
	Commands bool `json:"commands,omitempty"`
}

// HaltRecord is one machine's halt as the UPS drill saw it.
type HaltRecord struct {
	Node  string    `json:"node"`
	Stage int       `json:"stage"` // 1-based; the master's is len(stages)+1
	Down  time.Time `json:"down"`  // when the harness first saw it stopped
	// Halt is how the machine says it halted, where its provider can tell
	// (the lab reads it from the container); nil over SSH, where a machine
	// counts as halted once its sshd stops answering.
	Halt *cluster.Halt `json:"halt,omitempty"`
}

var (
	_ Recordable = (*UPSPowerLoss)(nil)
	_ Awaiter    = (*UPSPowerLoss)(nil)
)

// NewUPSPowerLoss builds the power drill of UPS ups, whose upsmon runs on
// master and halts stages in order, every machine within budget.
func NewUPSPowerLoss(name string, master cluster.Node, ups string, stages [][]cluster.Node, budget time.Duration) *UPSPowerLoss {
	f := &UPSPowerLoss{name: name, master: master, stages: stages,
		params: upsParams{Master: master.Name(), UPS: ups, Budget: budget}}
	for _, st := range stages {
		var names []string
		for _, n := range st {
			names = append(names, n.Name())
		}
		f.params.Stages = append(f.params.Stages, names)
	}
	return f
}

func (f *UPSPowerLoss) Name() string { return f.name }

// WithForcedShutdown makes the drill of a real rack: Inject runs command (upsmon
// -c fsd) on the master instead of playing the dummy UPS's battery.
func (f *UPSPowerLoss) WithForcedShutdown(command string) *UPSPowerLoss {
	f.params.FSD = command
	return f
}

// Halts are the halts Await saw, in the order they happened.
func (f *UPSPowerLoss) Halts() []HaltRecord { return f.halts }

func (f *UPSPowerLoss) devFile() string { return "/etc/nut/" + f.params.UPS + ".dev" }

// setStatus rewrites ups.status and battery.charge in dummy-ups's state file,
// which the driver reads again when it changes.
func (f *UPSPowerLoss) setStatus(ctx context.Context, status string, charge int) error {
	return exec.Run(f.master.Command(ctx, "sh", "-c", statusScript(f.devFile(), status, charge)))
}

// statusScript rewrites dummy-ups's state file. The driver reads the file
// again only when its modification time changes, in whole seconds (NUT 2.8
// compares st_mtime): a rewrite in the same second as the one before goes
// unseen, and the UPS stays "OB" where the drill wrote "OB LB" (seen on the
// K3s lab, where upsd reported OB quickly). The script moves the time a
// second past the previous one when the clock has not.
func statusScript(file, status string, charge int) string {
	return fmt.Sprintf(`f=%s; before=$(stat -c %%Y "$f") && `+
		`sed -i -e 's/^ups.status:.*/ups.status: %s/' -e 's/^battery.charge:.*/battery.charge: %d/' "$f" && `+
		`if [ "$(stat -c %%Y "$f")" -le "$before" ]; then touch -d "@$((before + 1))" "$f"; fi`, file, status, charge)
}

// WithCommands says the UPS is not NUT's: FSD is the rack's own
// forced-shutdown command (spec.ups.commands.forcedShutdown), and the revert
// asks whether it runs instead of asking upsd and upsmon.
func (f *UPSPowerLoss) WithCommands() *UPSPowerLoss {
	f.params.Commands = true
	return f
}

// upsStatus is what upsd reports, as upsmon sees it.
func (f *UPSPowerLoss) upsStatus(ctx context.Context) (string, error) {
	out, err := exec.Output(f.master.Command(ctx, "upsc", f.params.UPS+"@localhost", "ups.status"))
	return strings.TrimSpace(string(out)), err
}

// online is the effect's look before the fault: the UPS reports on line,
// neither on battery nor forcing a shutdown.
func (f *UPSPowerLoss) online(ctx context.Context) error {
	st, err := f.upsStatus(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("upsc %s@localhost on %s: %w", f.params.UPS, f.master.Name(), err)
	case !strings.Contains(st, "OL") || strings.Contains(st, "OB") || strings.Contains(st, "FSD"):
		return fmt.Errorf("UPS %s reports %q, not on line", f.params.UPS, st)
	}
	return nil
}

// onBatteryOrFSD is the effect: the UPS reports on battery, or upsmon's
// forced shutdown.
func (f *UPSPowerLoss) onBatteryOrFSD(ctx context.Context) error {
	st, err := f.upsStatus(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("upsc %s@localhost on %s: %w", f.params.UPS, f.master.Name(), err)
	case !strings.Contains(st, "OB") && !strings.Contains(st, "FSD"):
		return fmt.Errorf("UPS %s reports %q: neither on battery nor a forced shutdown", f.params.UPS, st)
	}
	return nil
}

func (f *UPSPowerLoss) waitStatus(ctx context.Context, limit time.Duration, ok func(string) bool, want string) error {
	var last string
	err := poll.Until(ctx, 250*time.Millisecond, limit, func() (bool, error) {
		st, err := f.upsStatus(ctx)
		last = st
		if err != nil {
			last = err.Error()
		}
		return err == nil && ok(st), nil
	})
	if errors.Is(err, poll.ErrLimit) {
		return fmt.Errorf("UPS %s on %s: still %q after %s, want %s", f.params.UPS, f.master.Name(), last, limit, want)
	}
	return err
}

// Inject: the mains fail (OB), then the battery runs low (OB LB), and upsmon,
// the primary, forces the shutdown (FSD). Once upsmon has committed to it, the
// state file goes back to OL: the master is off when the power returns, so the
// UPS must already say "online" then, as a real one does when its output comes
// back. upsmon does not abort a shutdown it has begun.
func (f *UPSPowerLoss) Inject(ctx context.Context) error {
	if f.params.FSD != "" {
		f.onBattery = time.Now()
		var stderr strings.Builder
		if err := f.master.Command(ctx, "sh", "-c", f.params.FSD).SetStderr(&stderr).Run(); err != nil {
			return fmt.Errorf("UPS %s on %s: %q: %w %s", f.params.UPS, f.master.Name(), f.params.FSD, err, strings.TrimSpace(stderr.String()))
		}
		return nil
	}
	if err := f.setStatus(ctx, "OB", 60); err != nil {
		return err
	}
	if err := f.waitStatus(ctx, 30*time.Second, func(s string) bool { return strings.Contains(s, "OB") }, "OB (on battery)"); err != nil {
		return err
	}
	f.onBattery = time.Now()
	if err := f.setStatus(ctx, "OB LB", 10); err != nil {
		return err
	}
	if err := f.waitStatus(ctx, 60*time.Second, func(s string) bool { return strings.Contains(s, "FSD") }, "FSD (upsmon forcing the shutdown)"); err != nil {
		return err
	}
	return f.setStatus(ctx, "OL", 10)
}

// AwaitLimit is the battery budget and a margin to see the last halt.
func (f *UPSPowerLoss) AwaitLimit() time.Duration { return f.params.Budget + upsHaltMargin }

// Await watches every machine until it has halted (or the battery budget ends)
// and checks the promises of the shutdown: every machine halted, cleanly, each
// stage only after the one before it was down, the master last, all within the
// battery budget counted from the loss of mains.
func (f *UPSPowerLoss) Await(ctx context.Context) error {
	start := f.onBattery
	if start.IsZero() {
		start = time.Now()
	}
	type watched struct {
		n     cluster.Node
		stage int
	}
	var all []watched
	for i, st := range f.stages {
		for _, n := range st {
			all = append(all, watched{n, i + 1})
		}
	}
	all = append(all, watched{f.master, len(f.stages) + 1})
	down := map[string]time.Time{}
	deadline := start.Add(f.params.Budget)
	// The limit passing is judged below: the machines not seen halted.
	_ = poll.Until(ctx, 250*time.Millisecond, time.Until(deadline.Add(upsHaltMargin)), func() (bool, error) {
		// Every machine still up is asked at once: asking a machine that
		// just went away can take a connect timeout, which must not delay
		// seeing the others go.
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, w := range all {
			if _, seen := down[w.n.Name()]; seen {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if up, err := w.n.Running(ctx); err == nil && !up {
					mu.Lock()
					down[w.n.Name()] = time.Now()
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return len(down) == len(all), nil
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var broken []string
	f.halts = nil
	for _, w := range all {
		at, ok := down[w.n.Name()]
		if !ok {
			broken = append(broken, fmt.Sprintf("%s (stage %d) never halted within the battery budget %s", w.n.Name(), w.stage, f.params.Budget))
			continue
		}
		rec := HaltRecord{Node: w.n.Name(), Stage: w.stage, Down: at}
		if hr, ok := w.n.(cluster.HaltReporter); ok {
			h, err := hr.LastHalt(ctx)
			if err != nil {
				broken = append(broken, fmt.Sprintf("%s: how it halted is unknown: %v", w.n.Name(), err))
			} else if !h.Clean {
				broken = append(broken, fmt.Sprintf("%s did not halt cleanly: %s", w.n.Name(), h.Detail))
			}
			rec.Halt = &h
			if !h.At.IsZero() {
				rec.Down = h.At
			}
		}
		if rec.Down.After(deadline) {
			broken = append(broken, fmt.Sprintf("%s halted %s after the mains failed, past the battery budget %s",
				w.n.Name(), rec.Down.Sub(start).Round(time.Second), f.params.Budget))
		}
		f.halts = append(f.halts, rec)
	}
	// Order: every machine of a stage down before any of a later stage.
	for _, a := range f.halts {
		for _, b := range f.halts {
			if a.Stage < b.Stage && b.Down.Before(a.Down) {
				broken = append(broken, fmt.Sprintf("%s (stage %d) halted %s before %s (stage %d)",
					b.Node, b.Stage, a.Down.Sub(b.Down).Round(10*time.Millisecond), a.Node, a.Stage))
			}
		}
	}
	if len(broken) > 0 {
		return fmt.Errorf("the rack's shutdown on UPS %s broke its promises: %s", f.params.UPS, strings.Join(broken, "; "))
	}
	return nil
}

// upsRevertLimit bounds the power drill's revert: a shutdown under way waited
// out (at most the battery budget and upsHaltMargin), then the UPS master
// powered on and waited for, then every other machine at once, each waited for.
const upsRevertLimit = 2*cluster.PowerOnLimit + time.Minute

// RevertLimit implements RevertLimiter.
func (f *UPSPowerLoss) RevertLimit() time.Duration {
	return upsRevertLimit + f.params.Budget + upsHaltMargin
}

var (
	// upsHaltMargin is how long past the battery budget the harness waits to
	// see the last machine halt.
	upsHaltMargin = 30 * time.Second
	// upsmonSettle is how long the revert lets upsmon, which polls upsd, see
	// the UPS back online before asking whether it began a shutdown anyway.
	upsmonSettle = 3 * time.Second
)

// underwayScript prints why the rack's shutdown is under way on the UPS
// master, or nothing: upsd reports FSD (upsmon, the primary, has committed to
// the shutdown; upsd forgets it only when it restarts, i.e. once the master
// was off), upsmon's SHUTDOWNCMD is running, or systemd is stopping the machine.
func (f *UPSPowerLoss) underwayScript() string {
	if f.params.Commands {
		// The program's name appears in this script only as the pattern,
		// bracketed so that it does not match the script's own shell (and
		// its subshells), whose command line carries it.
		return fmt.Sprintf(`if pgrep -f -- %s >/dev/null 2>&1; then echo "the forced-shutdown command (spec.ups.commands) is running"; exit 0; fi
if [ "$(systemctl is-system-running 2>/dev/null)" = stopping ]; then echo "systemd is stopping the machine"; exit 0; fi
exit 0`, exec.Quote(selfless(firstWord(f.params.FSD))))
	}
	return fmt.Sprintf(`st=$(upsc %s@localhost ups.status 2>/dev/null)
case " $st " in *" FSD "*) echo "upsd reports $st: upsmon forced the shutdown"; exit 0;; esac
cmd=$(sed -n 's/^[[:space:]]*SHUTDOWNCMD[[:space:]]*//p' /etc/nut/upsmon.conf 2>/dev/null | head -n1 | tr -d '"')
prog=${cmd%%%% *}
if [ -n "$prog" ] && pgrep -f -- "$prog" >/dev/null 2>&1; then echo "upsmon's SHUTDOWNCMD $prog is running"; exit 0; fi
if [ "$(systemctl is-system-running 2>/dev/null)" = stopping ]; then echo "systemd is stopping the machine"; exit 0; fi
exit 0`, f.params.UPS)
}

func firstWord(cmd string) string {
	if w := strings.Fields(cmd); len(w) > 0 {
		return w[0]
	}
	return ""
}

// selfless is the extended regular expression that matches s literally but
// not itself: its first character bracketed, so that a shell whose command
// line carries the pattern is not taken for the program.
func selfless(s string) string {
	if s == "" {
		return s
	}
	first, rest := s[:1], regexp.QuoteMeta(s[1:])
	if strings.ContainsAny(first, `]^\-`) {
		return regexp.QuoteMeta(s)
	}
	return "[" + first + "]" + rest
}

// shutdownUnderway asks the UPS master whether the rack's shutdown has begun.
// A master that cannot be asked, because it is already going down, has.
func (f *UPSPowerLoss) shutdownUnderway(ctx context.Context) (string, error) {
	up, err := f.master.Running(ctx)
	if err != nil || !up {
		return "", err
	}
	out, err := exec.Output(f.master.Command(ctx, "sh", "-c", f.underwayScript()))
	if err != nil {
		if up, rerr := f.master.Running(ctx); rerr == nil && !up {
			return "it went down while asked", nil
		}
		return "", fmt.Errorf("UPS master %s: is the rack's shutdown under way? %w", f.master.Name(), err)
	}
	return strings.TrimSpace(string(out)), nil
}

// awaitMasterHalt waits, once the shutdown has begun, for the UPS master to be
// off: upsmon does not abort a shutdown, so power that returns before the
// master halted is power the shutdown then takes away again.
func (f *UPSPowerLoss) awaitMasterHalt(ctx context.Context, why string) error {
	limit := f.params.Budget + upsHaltMargin
	err := poll.Until(ctx, 250*time.Millisecond, limit, func() (bool, error) {
		up, err := f.master.Running(ctx)
		return err == nil && !up, nil
	})
	if errors.Is(err, poll.ErrLimit) {
		return fmt.Errorf("UPS master %s: the rack's shutdown is still under way (%s) %s later, and the machine still up: power returned to it would be taken away again", f.master.Name(), why, limit)
	}
	return err
}

// Revert is the power returning, once the shutdown, if it began, has run its
// course (a run killed mid-shutdown leaves upsmon halting the rack, which no
// one can stop): the UPS master first, its UPS reporting OL before upsmon
// starts, then every other machine in the shutdown's order.
func (f *UPSPowerLoss) Revert(ctx context.Context) error {
	var errs []error
	why, err := f.shutdownUnderway(ctx)
	if err != nil {
		return err
	}
	if why == "" && f.params.FSD == "" {
		// No shutdown yet: the dummy UPS back online keeps upsmon from
		// beginning one, unless it already decided to on its last poll.
		if err := f.setStatus(ctx, "OL", 100); err != nil {
			if up, rerr := f.master.Running(ctx); rerr != nil || up {
				return err
			}
		}
		_ = f.waitStatus(ctx, 30*time.Second, func(s string) bool { return !strings.Contains(s, "OB") }, "OL (back online)")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(upsmonSettle):
		}
		if why, err = f.shutdownUnderway(ctx); err != nil {
			return err
		}
	}
	if why != "" {
		if err := f.awaitMasterHalt(ctx, why); err != nil {
			// The machines it halted still need their power back.
			errs = append(errs, err)
		}
	}
	if up, err := f.master.Running(ctx); err != nil || !up {
		if err := f.master.Start(ctx); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if f.params.FSD == "" {
			// The state file may still say OB LB when a run died before
			// upsmon committed: set OL before the driver, which starts
			// seconds later.
			var last error
			err := poll.Until(ctx, 200*time.Millisecond, 30*time.Second, func() (bool, error) {
				last = f.setStatus(ctx, "OL", 100)
				return last == nil, nil
			})
			if errors.Is(err, poll.ErrLimit) {
				err = last
			}
			if err != nil {
				return errors.Join(append(errs, fmt.Errorf("UPS %s: set online after power-on: %w", f.params.UPS, err))...)
			}
		}
	}
	if f.params.FSD == "" {
		// The lab: stage by stage, as the plan says.
		for _, st := range f.stages {
			for _, n := range st {
				errs = append(errs, n.Start(ctx))
			}
		}
		return errors.Join(errs...)
	}
	// A real rack: every machine at once, each waited for (power-on can
	// mean waiting for someone to press a button).
	rest := slices.Concat(f.stages...)
	starts := make([]error, len(rest))
	var wg sync.WaitGroup
	for i, n := range rest {
		wg.Add(1)
		go func() {
			defer wg.Done()
			starts[i] = n.Start(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(append(errs, starts...)...)
}

// Record implements Recordable.
func (f *UPSPowerLoss) Record() (string, any) { return "ups-power-loss", f.params }

func init() {
	Register("ups-power-loss", func(ctx context.Context, env Env, name string, raw json.RawMessage) (Fault, error) {
		var p upsParams
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf("fault %s: %w", name, err)
		}
		masters, err := lookupNodes(ctx, env, p.Master)
		if err != nil {
			return nil, fmt.Errorf("fault %s: %w", name, err)
		}
		var stages [][]cluster.Node
		for _, st := range p.Stages {
			ns, err := lookupNodes(ctx, env, st...)
			if err != nil {
				return nil, fmt.Errorf("fault %s: %w", name, err)
			}
			stages = append(stages, ns)
		}
		f := NewUPSPowerLoss(name, masters[0], p.UPS, stages, p.Budget).WithForcedShutdown(p.FSD)
		f.params.Commands = p.Commands
		return f, nil
	})
}
