package upgrade

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"rackdrill.dev/rackdrill/harness/fault"
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
