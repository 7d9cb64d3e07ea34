package probe_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/probe"
	"rackdrill.dev/rackdrill/harness/probe/agent"
)

// switchable is a real HTTP server on a fixed loopback port that can be taken
// down (its listener closed: connections are refused) and brought back.
type switchable struct {
	t       *testing.T
	addr    string
	handler http.Handler
	mu      sync.Mutex
	srv     *http.Server
}

func newSwitchable(t *testing.T, h http.Handler) *switchable {
	s := &switchable{t: t, handler: h}
	s.up()
	t.Cleanup(s.down)
	return s
}

func (s *switchable) up() {
	s.mu.Lock()
	defer s.mu.Unlock()
	addr := s.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port may linger briefly after close
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("listen %s: %v", addr, err)
	}
	s.addr = ln.Addr().String()
	s.srv = &http.Server{Handler: s.handler}
	go func() { _ = s.srv.Serve(ln) }()
}

func (s *switchable) down() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		_ = s.srv.Close()
		s.srv = nil
	}
}

func demoApp() http.Handler { return &agent.Handler{Demo: true, Node: "test-node"} }

func TestSamplerTimelineThroughAnOutage(t *testing.T) {
	app := newSwitchable(t, demoApp())
	lan := probe.NewHTTP("lan", "http://"+app.addr+"/", probe.WithHost("demo.rackdrill.local"), probe.WithMarker(agent.DemoMarker))
	other := newSwitchable(t, demoApp())
	internet := probe.NewHTTP("internet", "http://"+other.addr+"/", probe.WithMarker(agent.DemoMarker))
	s := probe.NewSampler([]probe.Probe{lan, internet}, probe.WithInterval(50*time.Millisecond), probe.WithTimeout(time.Second))
	stop := s.Start(context.Background())

	time.Sleep(500 * time.Millisecond)
	inject := time.Now()
	app.down()
	time.Sleep(700 * time.Millisecond)
	revert := time.Now()
	app.up()
	time.Sleep(500 * time.Millisecond)
	tl := stop()
	end := time.Now()

	if n := len(tl["lan"]); n < 20 || n > 40 {
		t.Errorf("%d lan samples in 1.7s at 50ms", n)
	}
	w := matrix.Window{Inject: inject, Revert: revert, End: end}
	samples := tl.Samples()
	lanRes := matrix.EvaluateSettled("test-outage", "lan", matrix.Cell{During: matrix.Down, Within: metav1.Duration{Duration: 200 * time.Millisecond}},
		samples["lan"], w, time.Second, 300*time.Millisecond, s.MaxGap("lan"))
	if lanRes.Verdict != matrix.Held || lanRes.Observed != "down" {
		t.Errorf("lan: %s (%s): %s", lanRes.Verdict, lanRes.Observed, lanRes.Why)
	}
	if *lanRes.TimeToImpact > 200*time.Millisecond || *lanRes.TimeToRecovery > 300*time.Millisecond {
		t.Errorf("lan: impact after %s, recovered after %s", *lanRes.TimeToImpact, *lanRes.TimeToRecovery)
	}
	if !strings.Contains(samples["lan"][len(samples["lan"])/2].Err, "connection refused") {
		t.Errorf("mid-outage sample error: %q", samples["lan"][len(samples["lan"])/2].Err)
	}
	inetRes := matrix.EvaluateSettled("test-outage", "internet", matrix.Cell{During: matrix.Up, Within: metav1.Duration{Duration: 100 * time.Millisecond}},
		samples["internet"], w, time.Second, 300*time.Millisecond, s.MaxGap("internet"))
	if inetRes.Verdict != matrix.Held || inetRes.Observed != "up" || inetRes.TimeToImpact != nil {
		t.Errorf("internet: %s (%s): %s", inetRes.Verdict, inetRes.Observed, inetRes.Why)
	}
	if g := tl.GreenSince(matrix.Probes[2:4]); g.IsZero() || g.Before(revert) {
		t.Errorf("GreenSince = %v, revert was %v", g, revert)
	}
}

func TestSamplerSlowProbeDelaysOnlyItself(t *testing.T) {
	hang := make(chan struct{})
	defer close(hang)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	fast := newSwitchable(t, demoApp())
	s := probe.NewSampler([]probe.Probe{
		probe.NewHTTP("slow", slow.URL),
		probe.NewHTTP("fast", "http://"+fast.addr+"/"),
	}, probe.WithInterval(50*time.Millisecond), probe.WithTimeout(300*time.Millisecond), probe.WithLimits(time.Second, 1000))
	began := time.Now()
	tl := s.Run(context.Background()) // returns by itself at the 1s limit
	if first := tl["slow"][0]; first.At.Add(-first.Took).Before(began) {
		t.Errorf("the first check was sent %s before the sampler started: its stamp is not its answer's time", began.Sub(first.At.Add(-first.Took)))
	}
	if n := len(tl["fast"]); n < 15 {
		t.Errorf("fast probe sampled %d times in 1s beside a hanging one", n)
	}
	if n := len(tl["slow"]); n < 2 || n > 4 {
		t.Errorf("slow probe sampled %d times with a 300ms timeout in 1s", n)
	}
	for _, r := range tl["slow"] {
		if r.OK || r.Took < 250*time.Millisecond || r.Took > 600*time.Millisecond {
			t.Errorf("hanging probe result: ok=%v took=%s err=%v", r.OK, r.Took, r.Err)
		}
	}
	// A sample is stamped when its answer came (here: the timeout), and its
	// flight covers the time before: consecutive hung checks leave no hole
	// the matrix would take for a stall.
	for i := 1; i < len(tl["slow"]); i++ {
		prev, cur := tl["slow"][i-1], tl["slow"][i]
		if sent := cur.At.Add(-cur.Took); sent.Before(prev.At) || sent.Sub(prev.At) > 50*time.Millisecond {
			t.Errorf("check %d sent %s after the previous answer; want at once (it outlasted the interval)", i, sent.Sub(prev.At))
		}
	}
	if g := s.MaxGap("slow"); g != 50*time.Millisecond+2*time.Second {
		t.Errorf("MaxGap = %s", g)
	}
}

func TestSamplerSampleLimit(t *testing.T) {
	app := newSwitchable(t, demoApp())
	s := probe.NewSampler([]probe.Probe{probe.NewHTTP("lan", "http://"+app.addr+"/")},
		probe.WithInterval(time.Millisecond), probe.WithLimits(time.Minute, 7))
	start := time.Now()
	if n := len(s.Run(context.Background())["lan"]); n != 7 {
		t.Errorf("%d samples, limit 7", n)
	}
	if time.Since(start) > 10*time.Second {
		t.Error("the count limit did not end the run")
	}
}

func TestHTTPProbeChecksWhatItReached(t *testing.T) {
	var gotHost string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost = r.Host
		switch r.URL.Path {
		case "/down":
			http.Error(w, "no backend", http.StatusServiceUnavailable)
		case "/other":
			fmt.Fprintln(w, "default backend - 404? no, some other app")
		default:
			fmt.Fprintln(w, agent.DemoMarker)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	if r := probe.NewHTTP("lan", srv.URL+"/", probe.WithHost("demo.rackdrill.local"), probe.WithMarker(agent.DemoMarker)).Check(ctx); !r.OK || gotHost != "demo.rackdrill.local" {
		t.Errorf("ok=%v err=%v host=%q", r.OK, r.Err, gotHost)
	}
	if r := probe.NewHTTP("lan", srv.URL+"/down").Check(ctx); r.OK || !strings.Contains(r.Err.Error(), "status 503") {
		t.Errorf("503: ok=%v err=%v", r.OK, r.Err)
	}
	if r := probe.NewHTTP("lan", srv.URL+"/other", probe.WithMarker(agent.DemoMarker)).Check(ctx); r.OK || !strings.Contains(r.Err.Error(), "without the app's marker") {
		t.Errorf("wrong app: ok=%v err=%v", r.OK, r.Err)
	}
	// A vantage point's dialer carries the probe's connections.
	dialed := false
	viaVantage := probe.NewHTTP("internet", "http://public.example:80/", probe.WithDialer(func(ctx context.Context, network, _ string) (net.Conn, error) {
		dialed = true
		return (&net.Dialer{}).DialContext(ctx, network, strings.TrimPrefix(srv.URL, "http://"))
	}))
	if r := viaVantage.Check(ctx); !r.OK || !dialed {
		t.Errorf("through a dialer: ok=%v dialed=%v err=%v", r.OK, dialed, r.Err)
	}
}

// agents starts real agents on loopback, as they run on each node, sharing one
// data directory (the NFS volume) and a demo app behind their apps URL.
func agents(t *testing.T, dir string, n int) (*probe.Agents, *switchable, []*switchable) {
	demo := newSwitchable(t, demoApp())
	var eps []string
	var nodes []*switchable
	for i := 0; i < n; i++ {
		a := newSwitchable(t, &agent.Handler{AppsURL: "http://" + demo.addr + "/", AppsMarker: agent.DemoMarker,
			Store: agent.DirStore{Dir: dir}, Node: fmt.Sprintf("node-%d", i)})
		nodes = append(nodes, a)
		eps = append(eps, a.addr)
	}
	return probe.NewAgents(eps), demo, nodes
}

func TestAgentProbes(t *testing.T) {
	dir := t.TempDir()
	a, demo, nodes := agents(t, dir, 2)
	ctx := context.Background()
	apps, storage, data := probe.NewApps(a), probe.NewStorage(a), probe.NewData(a, 20, time.Second, 5*time.Second)

	if r := data.Check(ctx); r.OK || !strings.Contains(r.Err.Error(), "no records were written") {
		t.Errorf("data before Write: %+v", r)
	}
	if err := data.Write(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range []probe.Probe{apps, storage, data} {
		if r := p.Check(ctx); !r.OK {
			t.Errorf("%s: %v", p.Name(), r.Err)
		}
	}
	// One node lost: the other node's agent answers.
	nodes[0].down()
	if r := apps.Check(ctx); !r.OK || !strings.Contains(r.Detail, "node-1") {
		t.Errorf("apps with node-0 down: %+v", r)
	}
	// The app lost: apps fails, and says so from inside.
	demo.down()
	if r := apps.Check(ctx); r.OK || !strings.Contains(r.Err.Error(), "agent on node-1") {
		t.Errorf("apps with the app down: %+v", r)
	}
	// A record changed behind the app's back: data fails naming it.
	recs, _ := filepath.Glob(filepath.Join(dir, "data", "*", "rec-0003"))
	if len(recs) != 1 {
		t.Fatalf("records on disk: %v", recs)
	}
	if err := os.WriteFile(recs[0], []byte("corrupted"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := data.Check(ctx); r.OK || !strings.Contains(r.Err.Error(), "1 of 20 records lost or changed") || !strings.Contains(r.Err.Error(), "rec-0003: checksum differs") {
		t.Errorf("data after corruption: %+v", r)
	}
	_ = os.RemoveAll(filepath.Join(dir, "data"))
	if r := data.Check(ctx); r.OK || !strings.Contains(r.Err.Error(), "20 of 20 records lost") {
		t.Errorf("data after loss: %+v", r)
	}
	// The volume gone (a file where the mount was): storage fails from inside.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := storage.Check(ctx); r.OK || !strings.Contains(r.Err.Error(), "not a directory") {
		t.Errorf("storage without its volume: %+v", r)
	}
	// Every agent down: the probe says none answered.
	nodes[1].down()
	if r := storage.Check(ctx); r.OK || !strings.Contains(r.Err.Error(), "no agent answered") {
		t.Errorf("no agents: %+v", r)
	}
}

func TestAgentWithoutVolumeSaysSo(t *testing.T) {
	srv := httptest.NewServer(&agent.Handler{Node: "n"})
	defer srv.Close()
	a := probe.NewAgents([]string{strings.TrimPrefix(srv.URL, "http://")})
	r := probe.NewStorage(a).Check(context.Background())
	if r.OK || !strings.Contains(r.Err.Error(), "no data volume configured") {
		t.Errorf("%+v", r)
	}
	if errors.Is(r.Err, context.DeadlineExceeded) {
		t.Error("unexpected timeout")
	}
}

// A check that hangs at the app behind an agent (a dead pod still in the
// Service, or a DNS server that never answers) is the app's failure: the
// agent reports why before the probe's own time is up, and the probe keeps
// asking that agent, which is alive. Seen on the lab's worker-lost: the run
// record said only "no answer within 2s" for 26 failed apps checks.
func TestAgentReportsAHangingAppBeforeTheProbeGivesUp(t *testing.T) {
	hang := make(chan struct{})
	defer close(hang)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer app.Close()
	var eps []string
	for i := 0; i < 3; i++ {
		a := newSwitchable(t, &agent.Handler{AppsURL: app.URL + "/", Node: fmt.Sprintf("node-%d", i)})
		eps = append(eps, a.addr)
	}
	apps := probe.NewApps(probe.NewAgents(eps))
	s := probe.NewSampler([]probe.Probe{apps}, probe.WithInterval(10*time.Millisecond),
		probe.WithTimeout(time.Second), probe.WithLimits(time.Minute, 3))
	tl := s.Run(context.Background())
	if len(tl["apps"]) != 3 {
		t.Fatalf("%d samples", len(tl["apps"]))
	}
	for i, r := range tl["apps"] {
		if r.OK || r.Err == nil {
			t.Fatalf("check %d against a hanging app: ok", i)
		}
		if msg := r.Err.Error(); !strings.Contains(msg, "agent on node-0") || strings.Contains(msg, "no answer within") {
			t.Errorf("check %d: %q; want node-0's own account of the hang (the agent is alive: the next check asks it again)", i, msg)
		}
		if msg := r.Err.Error(); !strings.Contains(msg, "stuck at: answer from "+strings.TrimPrefix(app.URL, "http://")) {
			t.Errorf("check %d: %q; want where the request was stuck", i, msg)
		}
		if r.Took > time.Second {
			t.Errorf("check %d took %s, past the probe's 1s", i, r.Took)
		}
	}
}

// A probe that gives up at its deadline with its own error is recorded with
// that error (why it failed: a lookup, a connect, an answer that never came),
// not with the sampler's "no answer".
func TestSamplerKeepsTheProbesOwnTimeoutError(t *testing.T) {
	s := probe.NewSampler([]probe.Probe{ctxProbe{}}, probe.WithInterval(10*time.Millisecond),
		probe.WithTimeout(200*time.Millisecond), probe.WithLimits(time.Minute, 3))
	for i, r := range s.Run(context.Background())["ctx"] {
		if r.OK || r.Err == nil || !strings.Contains(r.Err.Error(), "lookup app: i/o timeout") {
			t.Errorf("check %d: %+v; want the probe's own error", i, r)
		}
	}
}

// ctxProbe fails when its context ends, as a net dial does.
type ctxProbe struct{}

func (ctxProbe) Name() string { return "ctx" }
func (ctxProbe) Check(ctx context.Context) probe.Result {
	<-ctx.Done()
	return probe.Result{Err: errors.New("dial tcp: lookup app: i/o timeout")}
}
