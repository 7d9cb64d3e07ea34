package fault

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"rackdrill.dev/rackdrill/harness/topology"
)

// Issue 35, point 5: a port that does not answer within 1 s counted as
// closed, so an address that never answered (a wrong address, a harness
// with no route to the rack) read "effect seen" at once. The target must
// answer before the fault; its silence after is then evidence.
func TestEffectNeedsTheTargetToAnswerBeforeTheFault(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := ln.Addr().String()
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	never := dead.Addr().String()
	dead.Close() // nothing listens there: the wrong address
	e := Effect{What: "the NFS server refuses NFS", Within: time.Second, Check: portsClosed(never), Before: portsOpen(never)}
	if r := e.Wait(context.Background(), time.Now()); !r.Seen {
		t.Fatalf("the check alone sees a never-answering port as closed: %+v", r)
	}
	if _, err := e.BeforeFault(context.Background()); err == nil || !strings.Contains(err.Error(), "would prove nothing") || !strings.Contains(err.Error(), never) {
		t.Errorf("before the fault, a port that never answered: %v", err)
	}
	e = Effect{What: "closed", Within: time.Second, Check: portsClosed(up), Before: portsOpen(up)}
	if what, err := e.BeforeFault(context.Background()); err != nil || what == "" {
		t.Errorf("a listening port before the fault: %q, %v", what, err)
	}
	ln.Close()
	if r := e.Wait(context.Background(), time.Now()); !r.Seen {
		t.Errorf("closed after the fault: %+v", r)
	}
}

// metallb-dropped passed when the namespace never had a pod, and
// tunnel-client-cut when no pod was ready: what is not there cannot be
// dropped. Every effect but a non-NUT UPS's looks before the fault.
func TestEffectOfLooksBeforeTheFault(t *testing.T) {
	r, _, err := topology.Load("../../kind-configs/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b := newTestBinder(t, r, &opsLog{})
	for name, want := range map[string]string{
		"metallb-dropped":   "MetalLB is not there to drop",
		"tunnel-client-cut": "the tunnel client is not there to cut",
	} {
		f, err := Build(context.Background(), name, b, r, topology.ProviderContainers)
		if err != nil {
			t.Fatal(err)
		}
		e, err := EffectOf(f, b, r, topology.ProviderContainers)
		if err != nil {
			t.Fatal(err)
		}
		if e.Before == nil || !e.Held {
			t.Fatalf("%s: no look before the fault, or not held", name)
		}
		if _, err := e.BeforeFault(context.Background()); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s on a rack without its pods: %v, want %q", name, err, want)
		}
	}
	for _, name := range Names {
		pl, err := PlanFor(name, r, topology.ProviderContainers)
		if err != nil || !pl.Applicable {
			continue
		}
		f, err := Build(context.Background(), name, b, r, topology.ProviderContainers)
		if err != nil {
			t.Fatal(err)
		}
		if e, err := EffectOf(f, b, r, topology.ProviderContainers); err != nil || e.Before == nil {
			t.Errorf("%s: no look before the fault (%v)", name, err)
		}
	}
}

// A fault found undone mid-window (a controller restored MetalLB, a
// dead-man timer fired because re-arming failed) left every cell judged on
// a fault that was gone. A held effect is looked at through the window.
func TestEffectWatchSeesTheFaultUndone(t *testing.T) {
	defer func(d time.Duration) { EffectRecheck = d }(EffectRecheck)
	EffectRecheck = 50 * time.Millisecond
	injected := time.Now()
	e := Effect{What: "no MetalLB pod runs", Within: time.Second, Held: true, Check: func(context.Context) error {
		if time.Since(injected) > 400*time.Millisecond {
			return errString("still running: controller-7d9f")
		}
		return nil
	}}
	stop := make(chan struct{})
	time.AfterFunc(time.Second, func() { close(stop) })
	r := e.Watch(context.Background(), injected, stop)
	if !r.Seen || r.Undone == "" || r.UndoneAfter == nil || *r.UndoneAfter < 400*time.Millisecond || !strings.Contains(r.Undone, "controller-7d9f") {
		t.Errorf("undone at +0.4 s: %+v", r)
	}
	if len(r.Looks) < 5 {
		t.Errorf("%d looks in a second every 50 ms", len(r.Looks))
	}
	// Held in place: looked at, never undone.
	e.Check = func(context.Context) error { return nil }
	stop = make(chan struct{})
	time.AfterFunc(300*time.Millisecond, func() { close(stop) })
	if r := e.Watch(context.Background(), time.Now(), stop); r.Undone != "" || len(r.Looks) == 0 {
		t.Errorf("held: %+v", r)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
