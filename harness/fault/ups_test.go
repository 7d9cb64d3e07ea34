package fault

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	osexec "os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"rackdrill.dev/rackdrill/harness/cluster"
	rexec "rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/topology"
)

// upsMaster is a UPS master whose upsmon may have begun the rack's shutdown:
// until haltAt it is still up and says the shutdown is under way, then it is
// off. Powering on a machine that is still up does nothing, as docker start on
// a running container or a power button on a running server. The lab's
// kill-test drives the real upsmon; this fake stands for it because a unit
// test cannot run NUT and systemd.
type upsMaster struct {
	f *UPSPowerLoss // whose underway check this machine answers

	mu      sync.Mutex
	haltAt  time.Time // zero: no shutdown
	started bool      // powered on after it halted
	status  string    // what upsd reports
	// startedEarly: someone pressed "power on" while the shutdown ran.
	startedEarly bool
	checked      int
}

func (m *upsMaster) Name() string               { return "server-1" }
func (m *upsMaster) Roles() []topology.Role     { return nil }
func (m *upsMaster) Addr() netip.Addr           { return netip.Addr{} }
func (m *upsMaster) Stop(context.Context) error { return nil }
func (m *upsMaster) Kill(context.Context) error { return nil }

func (m *upsMaster) underway() bool {
	return !m.haltAt.IsZero() && time.Now().Before(m.haltAt)
}

func (m *upsMaster) Running(context.Context) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.started || m.haltAt.IsZero() || time.Now().Before(m.haltAt), nil
}

func (m *upsMaster) Start(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.underway():
		m.startedEarly = true // a no-op: it is still up, and about to halt
	case !m.haltAt.IsZero():
		m.started = true
	}
	return nil
}

func (m *upsMaster) Command(ctx context.Context, name string, args ...string) rexec.Cmd {
	m.mu.Lock()
	defer m.mu.Unlock()
	ok := rexec.Local{}.Command(ctx, "true")
	switch {
	case name == "upsc":
		return rexec.Local{}.Command(ctx, "echo", m.status)
	case name == "sh" && len(args) == 2 && args[1] == m.f.underwayScript():
		m.checked++
		if m.underway() {
			return rexec.Local{}.Command(ctx, "echo", "upsmon forced the shutdown (FSD)")
		}
		return ok
	case name == "sh" && len(args) == 2 && strings.Contains(args[1], "ups.status: OL"):
		m.status = "OL"
		if m.underway() {
			m.status = "FSD OL"
		}
	}
	return ok
}

var _ cluster.Node = (*upsMaster)(nil)

// The kill-test's finding: recover ran while upsmon's shutdown, which cannot
// be stopped once begun, was still going. The revert "powered on" machines that
// were still up, the shutdown then halted them all, and the rack stayed off.
// The revert must wait for the shutdown to finish before the power returns.
func TestUPSRevertWaitsForAShutdownUnderWay(t *testing.T) {
	defer func(d time.Duration) { upsmonSettle = d }(upsmonSettle)
	upsmonSettle = 50 * time.Millisecond
	for _, fsd := range []string{"", "upsmon -c fsd"} {
		name := "lab"
		if fsd != "" {
			name = "real rack"
		}
		t.Run(name+": shutdown under way", func(t *testing.T) {
			var mu sync.Mutex
			var log [][]string
			worker := recordingNode{"worker-1", &mu, &log}
			m := &upsMaster{haltAt: time.Now().Add(1500 * time.Millisecond), status: "FSD OL"}
			f := NewUPSPowerLoss("ups-power-loss", m, "rackups", [][]cluster.Node{{worker}}, 10*time.Second).WithForcedShutdown(fsd)
			m.f = f
			if err := f.Revert(context.Background()); err != nil {
				t.Fatal(err)
			}
			if m.startedEarly {
				t.Error("the revert powered the UPS master on while its shutdown was still under way")
			}
			// Whatever the revert did, the shutdown runs to its end.
			time.Sleep(time.Until(m.haltAt) + 50*time.Millisecond)
			if up, _ := m.Running(context.Background()); !up {
				t.Error("the UPS master is off after the revert: the shutdown halted it after the power came back")
			}
		})
		t.Run(name+": no shutdown", func(t *testing.T) {
			var mu sync.Mutex
			var log [][]string
			worker := recordingNode{"worker-1", &mu, &log}
			m := &upsMaster{status: "OB LB"}
			f := NewUPSPowerLoss("ups-power-loss", m, "rackups", [][]cluster.Node{{worker}}, 10*time.Second).WithForcedShutdown(fsd)
			m.f = f
			if err := f.Revert(context.Background()); err != nil {
				t.Fatal(err)
			}
			if m.checked == 0 {
				t.Error("the revert never asked the master whether a shutdown was under way")
			}
			if fsd == "" && m.status != "OL" {
				t.Errorf("the UPS still says %q after the revert, want OL", m.status)
			}
			if up, _ := m.Running(context.Background()); !up {
				t.Error("the UPS master is off after the revert")
			}
		})
	}
}

// A master that stays up with its shutdown still reported under way after the
// battery budget is an error the revert names, and it still powers on the rest.
func TestUPSRevertNamesAShutdownThatNeverEnds(t *testing.T) {
	defer func(d time.Duration) { upsmonSettle = d }(upsmonSettle)
	upsmonSettle = 50 * time.Millisecond
	defer func(d time.Duration) { upsHaltMargin = d }(upsHaltMargin)
	upsHaltMargin = 200 * time.Millisecond
	var mu sync.Mutex
	var log [][]string
	worker := recordingNode{"worker-1", &mu, &log}
	m := &upsMaster{haltAt: time.Now().Add(time.Hour), status: "FSD OL"}
	f := NewUPSPowerLoss("ups-power-loss", m, "rackups", [][]cluster.Node{{worker}}, 300*time.Millisecond)
	m.f = f
	err := f.Revert(context.Background())
	if err == nil || !strings.Contains(err.Error(), "server-1") || !strings.Contains(err.Error(), "still under way") {
		t.Fatalf("revert: %v; want an error naming server-1's shutdown still under way", err)
	}
}

// Over SSH no machine says how it halted (its sshd stopping is all the drill
// sees): run.json must not record such a halt as unclean. The power drill over
// SSH on the lab recorded "clean": false for every machine before this.
func TestUPSHaltRecordUnknownIsNotUnclean(t *testing.T) {
	unknown, err := json.Marshal(HaltRecord{Node: "worker-1", Stage: 1, Down: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(unknown), "clean") {
		t.Errorf("a halt nobody could see is recorded as %s", unknown)
	}
	known, _ := json.Marshal(HaltRecord{Node: "worker-1", Stage: 1, Halt: &cluster.Halt{Clean: true, Detail: "systemd poweroff"}})
	if !strings.Contains(string(known), `"clean":true`) {
		t.Errorf("a clean halt is recorded as %s", known)
	}
}

// A UPS not run by NUT (spec.ups.commands): the revert knows the shutdown is
// under way while the rack's forced-shutdown command runs, and only then. The
// script is run by a real shell beside a real process of that name: the
// shell's own command line, which carries the program's name, must not count.
func TestUPSCommandsShutdownUnderwayIsTheScriptRunning(t *testing.T) {
	dir := t.TempDir()
	script := dir + "/rackshutdown" // no regexp metacharacter: only the bracket keeps the pattern from matching itself
	if err := os.WriteFile(script, []byte("#!/bin/sh\nsleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var log [][]string
	f := NewUPSPowerLoss("ups-power-loss", recordingNode{"itx", &mu, &log}, "riello", nil, time.Minute).WithForcedShutdown(script + " --now").WithCommands()
	underway := func() string {
		out, err := rexec.Output(rexec.Local{}.Command(context.Background(), "sh", "-c", f.underwayScript()))
		if err != nil {
			t.Fatalf("underway script: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	if got := underway(); got != "" {
		t.Fatalf("nothing runs %s, yet the script says %q", script, got)
	}
	cmd := osexec.Command(script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if got := underway(); !strings.Contains(got, "forced-shutdown command (spec.ups.commands) is running") {
		t.Errorf("with %s running the script says %q", script, got)
	}
	in, _ := f.Steps()
	if len(in) == 0 || !strings.Contains(in[0].Action, "spec.ups.commands.forcedShutdown") || strings.Contains(in[1].Action, "upsmon") {
		t.Errorf("the plan's injection steps %+v do not say the UPS is driven by its own commands", in)
	}
}

// The interrupt grace of a drill is computed from RevertLimitFor (issue 35,
// point 9): it must be the power drill's own limit, battery budget included.
func TestRevertLimitForIsThePowerDrills(t *testing.T) {
	for _, battery := range []time.Duration{0, 5 * time.Minute, 30 * time.Minute} {
		f := NewUPSPowerLoss("ups-power-loss", &upsMaster{}, "rackups", nil, battery)
		if got, want := RevertLimitFor("ups-power-loss", battery), f.RevertLimit(); got < want {
			t.Errorf("battery %s: RevertLimitFor %s, the drill's own limit %s", battery, got, want)
		}
	}
	if got := RevertLimitFor("nfs-lost", time.Hour); got != DefaultRevertTimeout {
		t.Errorf("nfs-lost: %s, want the guard's default %s", got, DefaultRevertTimeout)
	}
}

// dummy-ups re-reads its state file only when the file's time changes, in
// whole seconds: "OB" then "OB LB" written within one second left the K3s
// lab's UPS at "OB", upsmon never forced the shutdown, and the drill failed
// at injection. Every rewrite must move the time on.
func TestUPSStatusRewritesAreSeenWithinOneSecond(t *testing.T) {
	file := t.TempDir() + "/rackups.dev"
	if err := os.WriteFile(file, []byte("ups.status: OL\nbattery.charge: 100\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mtime := func() int64 {
		st, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		return st.ModTime().Unix()
	}
	prev := mtime()
	for _, w := range []struct {
		status string
		charge int
	}{{"OB", 60}, {"OB LB", 10}, {"OL", 10}} {
		if out, err := osexec.Command("sh", "-c", statusScript(file, w.status, w.charge)).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", w.status, err, out)
		}
		now := mtime()
		if now <= prev {
			t.Errorf("after writing %q the file's time is %d, not past the previous %d: dummy-ups would not read it", w.status, now, prev)
		}
		prev = now
		b, _ := os.ReadFile(file)
		if want := "ups.status: " + w.status + "\n"; !strings.Contains(string(b), want) {
			t.Errorf("file after %q: %q", w.status, b)
		}
	}
}
