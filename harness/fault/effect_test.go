package fault

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func TestPortsClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	check := portsClosed(addr)
	if err := check(context.Background()); err == nil || !strings.Contains(err.Error(), addr) {
		t.Errorf("a listening port: %v", err)
	}
	ln.Close()
	if err := check(context.Background()); err != nil {
		t.Errorf("a closed port: %v", err)
	}
	e := Effect{What: "closed", Within: 200 * time.Millisecond, Check: portsClosed(addr)}
	if r := e.Wait(context.Background(), time.Now()); !r.Seen {
		t.Errorf("%+v", r)
	}
	// Seen, but after its budget: not seen. (server-kill-2 on the lab was
	// first "seen" 18.4 s after the injection against 15 s.)
	slow := Effect{What: "slow", Within: 100 * time.Millisecond, Check: func(context.Context) error {
		time.Sleep(300 * time.Millisecond)
		return nil
	}}
	if r := slow.Wait(context.Background(), time.Now()); r.Seen || !strings.Contains(r.Detail, "seen only") {
		t.Errorf("a late effect: %+v", r)
	}
}

// An effect counts as seen only within its budget from the injection: seen
// later, or never, it was not seen, with what was seen instead.
func TestEffectWait(t *testing.T) {
	at := func(d time.Duration) func(context.Context) error {
		t0 := time.Now()
		return func(context.Context) error {
			if time.Since(t0) < d {
				return errors.New("still answering")
			}
			return nil
		}
	}
	injected := time.Now()
	if r := (Effect{What: "x", Within: 2 * time.Second, Check: at(600 * time.Millisecond)}).Wait(context.Background(), injected); !r.Seen || r.After < 600*time.Millisecond || r.Detail != "" {
		t.Errorf("seen within the budget: %+v", r)
	}
	if r := (Effect{What: "x", Within: 700 * time.Millisecond, Check: at(time.Hour)}).Wait(context.Background(), time.Now()); r.Seen || r.Detail != "still answering" {
		t.Errorf("never seen: %+v", r)
	}
	// Injected long ago: seen at the first look, but past its budget.
	if r := (Effect{What: "x", Within: time.Second, Check: at(0)}).Wait(context.Background(), time.Now().Add(-5*time.Second)); r.Seen || !strings.Contains(r.Detail, "seen only") {
		t.Errorf("seen late: %+v", r)
	}
}
