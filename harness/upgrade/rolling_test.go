package upgrade

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stesting "k8s.io/client-go/testing"

	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/matrix"
)

// A rehearsal killed mid-upgrade leaves its entry in the ledger: `rackdrill
// recover` clears it without touching the lab (an upgrade has no revert; the
// lab stays as the upgrade left it), rather than failing on an unknown kind
// and blocking every later drill.
func TestRecoverClearsAnInterruptedUpgrade(t *testing.T) {
	l, err := fault.OpenLedger(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := NewRolling(&Lab{}, runbookTo(t, "v1.34.4"))
	kind, params := r.Record()
	raw, _ := json.Marshal(params)
	if err := l.Record(fault.Entry{ID: "rolling-upgrade-1", Fault: r.Name(), Kind: kind, Params: raw, Rack: "lab",
		Provider: "containers", InjectedAt: time.Now().Add(-time.Hour), PID: 1 << 30, Host: "elsewhere"}); err != nil {
		t.Fatal(err)
	}
	res, err := fault.Recover(context.Background(), l, fault.Env{Log: logr.Discard()})
	if err != nil || len(res) != 1 {
		t.Fatalf("recover: %v %+v", err, res)
	}
	if left, _ := l.Entries(); len(left) != 0 {
		t.Errorf("ledger still holds %v", left)
	}
}

// The rehearsed upgrade runs its course in Await, and its steps, each with
// its machine and span, are what run.json and the report's timeline show.
func TestRollingStepsAreTheRunbooks(t *testing.T) {
	l, _, rb := newLab(t, "v1.34.4")
	r := NewRolling(l, rb)
	if err := r.Inject(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.Await(context.Background()); err != nil {
		t.Fatal(err)
	}
	steps := r.Steps()
	if len(steps) != len(rb.Steps)-3 {
		t.Fatalf("%d steps, want %d", len(steps), len(rb.Steps)-3)
	}
	if steps[0].Name != "[server-1] kubeadm v1.34.4" || steps[len(steps)-1].Name != "[operator] uncordon "+rb.Steps[len(rb.Steps)-2].Node {
		t.Errorf("first %q, last %q", steps[0].Name, steps[len(steps)-1].Name)
	}
	for i, s := range steps {
		if s.End.Before(s.Start) || (i > 0 && s.Start.Before(steps[i-1].End)) || s.Error != "" {
			t.Errorf("step %d %+v", i+1, s)
		}
	}
}

// The heal cell does not count a failed heal while a leader lease moves, and
// only a move the upgrade saw: the controller-manager's lease, held by
// server-2, is taken by server-1 during server-1's upgrade apply; the span
// excused runs from server-2's last renewal to server-1's acquisition, by the
// lease's own times. A lease that did not move excuses nothing.
func TestRollingSeesTheLeaseMoves(t *testing.T) {
	l, w, rb := newLab(t, "v1.34.4")
	t0 := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	lease := func(name, holder string, acquire, renew time.Time) *coordinationv1.Lease {
		d := int32(15)
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-system"},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &d,
				AcquireTime: &metav1.MicroTime{Time: acquire}, RenewTime: &metav1.MicroTime{Time: renew}}}
	}
	ctx := context.Background()
	for _, le := range []*coordinationv1.Lease{
		lease("kube-controller-manager", "server-2_0f3c", t0.Add(-time.Hour), t0),
		lease("kube-scheduler", "server-3_9a1b", t0.Add(-time.Hour), time.Now().Add(time.Hour)),
	} {
		if _, err := w.kube.CoordinationV1().Leases("kube-system").Create(ctx, le, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	moved := t0.Add(12 * time.Second) // within the lease's 15 s: the span as read
	w.onCmd = func(line string) {
		if line != "server-1: kubeadm upgrade apply -y v1.34.4" {
			return
		}
		// The harness has read the lease as server-2 holds it.
		for !slices.ContainsFunc(w.kube.Actions(), func(a k8stesting.Action) bool {
			return a.GetVerb() == "get" && a.GetResource().Resource == "leases"
		}) {
			time.Sleep(10 * time.Millisecond)
		}
		if _, err := w.kube.CoordinationV1().Leases("kube-system").Update(ctx,
			lease("kube-controller-manager", "server-1_77de", moved, time.Now().Add(time.Hour)), metav1.UpdateOptions{}); err != nil {
			t.Error(err)
		}
	}
	r := NewRolling(l, rb)
	if err := r.Await(ctx); err != nil {
		t.Fatal(err)
	}
	got := r.Excused()[matrix.ExceptLeaderElection]
	want := []matrix.Interval{{From: t0, To: moved, What: "kube-controller-manager's lease moved from server-2 to server-1"}}
	if len(got) != 1 || !got[0].From.Equal(want[0].From) || !got[0].To.Equal(want[0].To) || got[0].What != want[0].What {
		t.Errorf("excused %+v, want %+v", got, want)
	}
}

// A lease whose holder stopped renewing and that no one took by the end of
// the upgrade had no leader from the last renewal to the end.
func TestLeaseLapsedAtTheEnd(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	seen := []leaseSeen{{holder: "server-1_a", acquire: t0, renew: t0.Add(10 * time.Second), duration: 15 * time.Second}}
	got := leaseMoves("kube-scheduler", seen, t0.Add(time.Minute), time.Second)
	// Issue 35, point 3: a lapsed lease excused everything to the end of
	// the upgrade (240 failed heals over 20 minutes). It excuses its own
	// duration and the handover (retry period, reading interval), no more.
	if len(got) != 1 || !got[0].From.Equal(t0.Add(10*time.Second)) || !got[0].To.Equal(t0.Add(28*time.Second)) || !strings.Contains(got[0].What, "lapsed on server-1") {
		t.Errorf("got %+v, want from +10s to +28s (renewal + 15 s + 2 s retry + 1 s reading)", got)
	}
	if got := leaseMoves("kube-scheduler", seen, t0.Add(20*time.Second), time.Second); len(got) != 0 {
		t.Errorf("a lease still valid at the end: %+v", got)
	}
}

// Issue 35, point 3: failed reads (the API restarting) were skipped, so the
// span started at the last renewal read, 5m25s before the acquisition in one
// rehearsal. A move can last no longer than the lease's duration and the
// handover, whatever the readings missed.
func TestLeaseMoveBoundedByTheLeaseDuration(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	seen := []leaseSeen{
		{holder: "server-1_a", acquire: t0, renew: t0.Add(10 * time.Second), duration: 15 * time.Second},
		{holder: "server-2_b", acquire: t0.Add(5*time.Minute + 35*time.Second), renew: t0.Add(5*time.Minute + 35*time.Second), duration: 15 * time.Second},
	}
	got := leaseMoves("kube-controller-manager", seen, t0.Add(5*time.Minute+40*time.Second), time.Second)
	if len(got) != 1 {
		t.Fatalf("got %+v", got)
	}
	if d := got[0].To.Sub(got[0].From); d != 18*time.Second {
		t.Errorf("span %s (%+v), want 18s: the lease's 15 s, the 2 s retry and the 1 s reading", d, got[0])
	}
	if !strings.Contains(got[0].What, "bounded by the lease's 15s") {
		t.Errorf("what = %q", got[0].What)
	}
	// A move seen in time is as long as it was.
	seen[1].acquire, seen[1].renew = t0.Add(27*time.Second), t0.Add(27*time.Second)
	if got := leaseMoves("kube-controller-manager", seen, t0.Add(30*time.Second), time.Second); len(got) != 1 || got[0].To.Sub(got[0].From) != 17*time.Second {
		t.Errorf("a 17 s move: %+v", got)
	}
}
