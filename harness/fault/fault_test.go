package fault_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"rackdrill.dev/rackdrill/harness/fault"
)

// markerFault is a real fault on this machine: injecting creates a file,
// reverting removes it, with the same commands a rack fault would run.
func markerFault(t *testing.T) (*fault.Exec, string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "fault-in-place")
	return fault.NewExec("marker", nil, []string{"touch", f}, []string{"rm", "-f", f}), f
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func newGuard(t *testing.T) (*fault.Guard, *fault.Ledger) {
	t.Helper()
	l, err := fault.OpenLedger(filepath.Join(t.TempDir(), "ledger"))
	if err != nil {
		t.Fatal(err)
	}
	return fault.NewGuard(l, fault.WithRack("test", "local"), fault.WithRevertTimeout(10*time.Second)), l
}

func ledgerLen(t *testing.T, l *fault.Ledger) int {
	t.Helper()
	es, err := l.Entries()
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

func TestHoldRevertsOnEveryWayOut(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		observe func(ctx context.Context) error
		wantErr string
	}{
		{name: "success", observe: func(context.Context) error { return nil }},
		{name: "observe fails", observe: func(context.Context) error { return errors.New("cell broken") }, wantErr: "cell broken"},
		{name: "timeout", timeout: 300 * time.Millisecond,
			observe: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, wantErr: "held for its 300ms timeout"},
		{name: "SIGTERM", observe: signalSelf(syscall.SIGTERM), wantErr: "interrupted by terminated"},
		{name: "SIGINT", observe: signalSelf(syscall.SIGINT), wantErr: "interrupted by interrupt"},
		{name: "caller's context ends", observe: func(ctx context.Context) error { return context.Canceled }, wantErr: "canceled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, l := newGuard(t)
			f, marker := markerFault(t)
			var sawFault, sawLedger bool
			err := g.Hold(context.Background(), f, tc.timeout, func(ctx context.Context) error {
				sawFault, sawLedger = exists(marker), ledgerLen(t, l) == 1
				return tc.observe(ctx)
			})
			if !sawFault || !sawLedger {
				t.Errorf("while held: fault in place %v, in ledger %v", sawFault, sawLedger)
			}
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Hold error = %v, want %q", err, tc.wantErr)
			}
			if exists(marker) {
				t.Error("fault still in place after Hold")
			}
			if n := ledgerLen(t, l); n != 0 {
				t.Errorf("%d ledger entries after a successful revert", n)
			}
		})
	}
}

// signalSelf is an observation during which this process gets sig, as from a
// user's Ctrl-C or a CI runner's SIGTERM.
func signalSelf(sig syscall.Signal) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if err := syscall.Kill(os.Getpid(), sig); err != nil {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	}
}

func TestHoldRevertsOnPanic(t *testing.T) {
	g, l := newGuard(t)
	f, marker := markerFault(t)
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("panic not re-raised: %v", p)
			}
		}()
		_ = g.Hold(context.Background(), f, 0, func(context.Context) error { panic("boom") })
	}()
	if exists(marker) || ledgerLen(t, l) != 0 {
		t.Errorf("after panic: fault in place %v, ledger %d", exists(marker), ledgerLen(t, l))
	}
}

func TestHoldRevertsAPartialInject(t *testing.T) {
	g, l := newGuard(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "half")
	// The inject does half its work, then fails: the revert still runs.
	f := fault.NewExec("partial", nil, []string{"sh", "-c", "touch " + marker + " && exit 3"}, []string{"rm", "-f", marker})
	err := g.Hold(context.Background(), f, 0, func(context.Context) error { t.Error("observe ran after a failed inject"); return nil })
	if err == nil || !strings.Contains(err.Error(), "inject fault partial") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("Hold error = %v", err)
	}
	if exists(marker) || ledgerLen(t, l) != 0 {
		t.Errorf("after failed inject: fault in place %v, ledger %d", exists(marker), ledgerLen(t, l))
	}
}

func TestFailedRevertStaysInLedgerForRecover(t *testing.T) {
	g, l := newGuard(t)
	marker := filepath.Join(t.TempDir(), "stuck")
	gate := marker + ".revert-allowed"
	// The revert fails until the gate exists, as a revert does while a node is
	// unreachable.
	f := fault.NewExec("stuck", nil, []string{"touch", marker},
		[]string{"sh", "-c", "test -e " + gate + " && rm -f " + marker})
	err := g.Hold(context.Background(), f, 0, nil)
	if err == nil || !strings.Contains(err.Error(), "still in the ledger") {
		t.Fatalf("Hold error = %v", err)
	}
	if !exists(marker) || ledgerLen(t, l) != 1 {
		t.Fatalf("fault in place %v, ledger %d", exists(marker), ledgerLen(t, l))
	}
	// The ledger refuses a new fault while one may be in place.
	f2, _ := markerFault(t)
	if err := g.Hold(context.Background(), f2, 0, nil); !errors.Is(err, fault.ErrLedgerNotEmpty) {
		t.Errorf("second Hold = %v, want ErrLedgerNotEmpty", err)
	}
	// Recover from "another process": it fails while the node is unreachable, and
	// keeps the entry; then succeeds and clears it.
	res, err := fault.Recover(context.Background(), l, fault.Env{})
	if err == nil || len(res) != 1 || res[0].Err == nil || ledgerLen(t, l) != 1 {
		t.Fatalf("Recover while stuck: %v %+v", err, res)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err = fault.Recover(context.Background(), l, fault.Env{})
	if err != nil || len(res) != 1 || res[0].Entry.Fault != "stuck" {
		t.Fatalf("Recover: %v %+v", err, res)
	}
	if exists(marker) || ledgerLen(t, l) != 0 {
		t.Errorf("after Recover: fault in place %v, ledger %d", exists(marker), ledgerLen(t, l))
	}
}

func TestRecoverLeavesFaultsOfLiveRuns(t *testing.T) {
	l, _ := fault.OpenLedger(t.TempDir())
	sleeper := exec.Command("sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() }()
	host, _ := os.Hostname()
	marker := filepath.Join(t.TempDir(), "held")
	f := fault.NewExec("held", nil, []string{"touch", marker}, []string{"rm", "-f", marker})
	kind, params := f.Record()
	raw, _ := json.Marshal(params)
	if err := l.Record(fault.Entry{ID: "1-held", Fault: "held", Kind: kind, Params: raw, PID: sleeper.Process.Pid, Host: host}); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(marker, nil, 0o644)
	res, err := fault.Recover(context.Background(), l, fault.Env{})
	if err == nil || !strings.Contains(err.Error(), "held by running process") || !exists(marker) {
		t.Fatalf("Recover of a live run's fault: %v %+v", err, res)
	}
	_ = sleeper.Process.Kill()
	_ = sleeper.Wait()
	if _, err := fault.Recover(context.Background(), l, fault.Env{}); err != nil || exists(marker) {
		t.Fatalf("Recover after the run died: %v, fault in place %v", err, exists(marker))
	}
}

func TestLedger(t *testing.T) {
	dir := t.TempDir()
	l, err := fault.OpenLedger(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"2-b", "1-a"} {
		if err := l.Record(fault.Entry{ID: id, Fault: id, Kind: "exec", Params: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	es, err := l.Entries()
	if err != nil || len(es) != 2 || es[0].ID != "1-a" {
		t.Fatalf("Entries = %+v, %v", es, err)
	}
	if err := l.Clear("1-a"); err != nil {
		t.Fatal(err)
	}
	if err := l.Clear("1-a"); err != nil {
		t.Errorf("clearing twice: %v", err)
	}
	// A torn or foreign file is reported, naming it, never skipped.
	_ = os.WriteFile(filepath.Join(dir, "3-c.json"), []byte("{not json"), 0o644)
	es, err = l.Entries()
	if err == nil || !strings.Contains(err.Error(), "3-c.json") || len(es) != 1 {
		t.Errorf("Entries with a corrupt file = %+v, %v", es, err)
	}
	// No temp files are left behind by Record.
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	if len(leftovers) > 0 {
		t.Errorf("temp files left: %v", leftovers)
	}
}

func TestRecoverUnknownKind(t *testing.T) {
	l, _ := fault.OpenLedger(t.TempDir())
	_ = l.Record(fault.Entry{ID: "1-x", Fault: "x", Kind: "teleport", Params: []byte(`{}`)})
	_, err := fault.Recover(context.Background(), l, fault.Env{})
	if err == nil || !strings.Contains(err.Error(), `unknown kind "teleport"`) || ledgerLen(t, l) != 1 {
		t.Errorf("Recover = %v", err)
	}
}

// patientFault's revert takes longer than the guard's default, and it says
// so: powering a rack back on takes minutes.
type patientFault struct{ reverted bool }

func (f *patientFault) Name() string                 { return "ups-power-loss" }
func (f *patientFault) Inject(context.Context) error { return nil }
func (f *patientFault) Record() (string, any)        { return "test-patient", nil }
func (f *patientFault) RevertLimit() time.Duration   { return 5 * time.Second }
func (f *patientFault) Revert(ctx context.Context) error {
	select {
	case <-time.After(700 * time.Millisecond):
		f.reverted = true
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestGuardGivesARevertTheTimeItNeeds(t *testing.T) {
	l, err := fault.OpenLedger(filepath.Join(t.TempDir(), "ledger"))
	if err != nil {
		t.Fatal(err)
	}
	g := fault.NewGuard(l, fault.WithRevertTimeout(100*time.Millisecond))
	f := &patientFault{}
	if err := g.Hold(context.Background(), f, 0, nil); err != nil || !f.reverted {
		t.Errorf("a revert that needs 700ms under a 100ms default and a 5s limit of its own: %v (reverted %v)", err, f.reverted)
	}
	if fault.LongestRevert() < 20*time.Minute {
		t.Errorf("LongestRevert %s does not cover the power drill's two power-on waits", fault.LongestRevert())
	}
}

// These tests recover faults they have just recorded: the operations of a
// killed run in flight are waited for in TestRecoverWaitsForInFlightOperations.
func init() { fault.InFlight = 0 }

// A run killed mid-injection may have an operation on its way (a docker
// kill, an API patch): recover waits it out before reverting, or the
// operation lands after the revert.
func TestRecoverWaitsForInFlightOperations(t *testing.T) {
	defer func(d time.Duration) { fault.InFlight = d }(fault.InFlight)
	fault.InFlight = 400 * time.Millisecond
	f, marker := markerFault(t)
	l, err := fault.OpenLedger(filepath.Join(t.TempDir(), "ledger"))
	if err != nil {
		t.Fatal(err)
	}
	kind, params := f.Record()
	raw, _ := json.Marshal(params)
	injected := time.Now()
	if err := l.Record(fault.Entry{ID: "x", Fault: "marker", Kind: kind, Params: raw, InjectedAt: injected, PID: -1}); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(marker, nil, 0o644)
	if _, err := fault.Recover(context.Background(), l, fault.Env{}); err != nil || exists(marker) {
		t.Fatalf("recover: %v, marker left %v", err, exists(marker))
	}
	// Measured from the injection the ledger records, as recover counts:
	// a loaded machine may take a while between recording and recovering.
	if d := time.Since(injected); d < 400*time.Millisecond {
		t.Errorf("reverted %s after the injection, before the in-flight window of 400ms", d)
	}
}
