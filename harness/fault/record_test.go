package fault

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
)

// TestRecordRebuildsEveryKind checks what `rackdrill recover` relies on: a
// fault written to the ledger is rebuilt by another process with exactly the
// parameters its revert needs (the replicas to scale back to, the speakers'
// previous nodeSelector). Nothing is injected here: the faults act on a live
// rack, which the lab's drills exercise.
func TestRecordRebuildsEveryKind(t *testing.T) {
	kube := KubeClient(func(context.Context) (kubernetes.Interface, error) { return nil, nil })
	scale := &Scale{name: "metallb-dropped", kube: kube, Namespace: "metallb-system", Object: "controller", Replicas: 2}
	uns := &Unschedule{name: "metallb-dropped", kube: kube, Namespace: "metallb-system", Object: "speaker",
		Previous: map[string]string{"kubernetes.io/os": "linux"}}
	for _, f := range []Recordable{
		NewAll("metallb-dropped", scale, uns),
		&Scale{name: "tunnel-client-cut", kube: kube, Namespace: "rackdrill-tunnel", Object: "tunnel-client", Replicas: 1},
	} {
		kind, params := f.Record()
		raw, err := json.Marshal(params)
		if err != nil {
			t.Fatal(err)
		}
		got, err := rebuild(context.Background(), Env{Kube: kube}, Entry{Fault: f.Name(), Kind: kind, Params: raw, InjectedAt: time.Now()})
		if err != nil {
			t.Fatalf("%s: %v", f.Name(), err)
		}
		gk, gp := got.(Recordable).Record()
		graw, _ := json.Marshal(gp)
		if gk != kind || string(graw) != string(raw) || got.Name() != f.Name() {
			t.Errorf("%s: rebuilt as %s %s, want %s %s", f.Name(), gk, graw, kind, raw)
		}
	}
	// Without a client of the rack's API, a kube fault cannot be reverted: say so.
	kind, params := scale.Record()
	raw, _ := json.Marshal(params)
	if _, err := rebuild(context.Background(), Env{}, Entry{Fault: "x", Kind: kind, Params: raw}); err == nil {
		t.Error("rebuilt a kube fault without a client")
	}
}
