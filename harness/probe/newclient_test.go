package probe_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"rackdrill.dev/rackdrill/harness/probe"
	"rackdrill.dev/rackdrill/harness/probe/agent"
)

// The api probe samples as kubectl does, one new connection (TCP and TLS)
// per sample: a warm client's kept connection hides a load balancer that has
// not brought its backends back yet.
func TestAPIProbeOpensANewConnectionPerSample(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"NodeList","apiVersion":"v1","metadata":{"resourceVersion":"42"},"items":[]}`))
	}))
	srv.EnableHTTP2 = true
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	api, err := probe.NewAPI(&rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{Insecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if r := api.Check(context.Background()); !r.OK {
			t.Fatalf("sample %d: %v", i, r.Err)
		}
	}
	if n := conns.Load(); n != 5 {
		t.Errorf("5 samples opened %d connections, want a new one each", n)
	}
}

// The lan probe forgets its neighbour entry before each request (a new
// laptop on the LAN), and a failure to forget is a failed sample, not a warm
// one passed off as new.
func TestHTTPProbeForgetsBeforeEachRequest(t *testing.T) {
	app := newSwitchable(t, demoApp())
	var forgot atomic.Int32
	p := probe.NewHTTP("lan", "http://"+app.addr+"/", probe.WithMarker(agent.DemoMarker),
		probe.WithForget(func(context.Context) error { forgot.Add(1); return nil }))
	for i := 0; i < 3; i++ {
		if r := p.Check(context.Background()); !r.OK {
			t.Fatal(r.Err)
		}
	}
	if forgot.Load() != 3 {
		t.Errorf("forgot %d times in 3 samples", forgot.Load())
	}
	failing := probe.NewHTTP("lan", "http://"+app.addr+"/", probe.WithForget(func(context.Context) error { return context.DeadlineExceeded }))
	if r := failing.Check(context.Background()); r.OK {
		t.Error("a sample whose neighbour entry could not be forgotten passed")
	}
}

// A sample that timed out leaves no connection for the next: behind a TCP
// load balancer, a kept connection stays with the server it was opened to.
// (The first rehearsal on the lab: while server-1's etcd was upgraded, its
// API server held every request, HAProxy had already sent new connections to
// the two others, and the probe, reusing its timed-out connection, saw the
// API down for 75 s.) Here the first connection's requests hang; every later
// sample must open its own and answer.
func TestAPIProbeDropsATimedOutConnection(t *testing.T) {
	var conns atomic.Int32
	var first atomic.Pointer[net.Conn]
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := r.Context().Value(connKey{}).(net.Conn); ok && first.Load() != nil && *first.Load() == c {
			// Held as the API server held them, whatever the client does.
			<-release
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"NodeList","apiVersion":"v1","metadata":{"resourceVersion":"42"},"items":[]}`))
	}))
	srv.EnableHTTP2 = true
	srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		first.CompareAndSwap(nil, &c)
		return context.WithValue(ctx, connKey{}, c)
	}
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	defer close(release) // before Close, which waits for the held request
	api, err := probe.NewAPI(&rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{Insecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	r := api.Check(ctx)
	cancel()
	if r.OK {
		t.Fatal("the first sample answered through the held connection")
	}
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		r := api.Check(ctx)
		cancel()
		if !r.OK {
			t.Errorf("sample %d after the timed-out one: %v (%d connections opened)", i+1, r.Err, conns.Load())
		}
	}
}

type connKey struct{}
