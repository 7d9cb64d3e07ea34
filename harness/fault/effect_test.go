package fault

import (
	"context"
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
}
