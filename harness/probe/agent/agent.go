// Package agent is the probe workload that runs inside the cluster: the end of
// the apps, storage and data probes that the harness cannot reach from outside
// without depending on the very paths under test.
//
// The harness asks an agent over HTTP (a NodePort with externalTrafficPolicy
// Local, so each node's own agent answers); the agent then does the in-cluster
// work: a request to the demo app's Service (apps), a write-then-read on the
// NFS-backed volume (storage), writing and verifying checksummed records (data),
// a pod of the heal Deployment deleted and replaced, through the in-cluster
// API path (heal).
// Every answer is a Report in JSON.
package agent

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
)

// Report is every answer of the agent.
type Report struct {
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	Error  string `json:"error,omitempty"`
	// Records are the checksums of written records (data/write), by name.
	Records map[string]string `json:"records,omitempty"`
}

// DemoMarker is in every page of the demo app, so that the lan and internet
// probes know they reached it and not a default backend.
const DemoMarker = "rackdrill-demo-ok"

// Paths of the agent's API.
const (
	PathRoot    = "/"
	PathHealth  = "/healthz"
	PathApps    = "/check/apps"
	PathStorage = "/check/storage"
	PathWrite   = "/data/write"
	PathVerify  = "/data/verify"
)

// Store is where storage and data records go: the NFS-backed volume.
type Store interface {
	Write(ctx context.Context, name string, data []byte) error
	Read(ctx context.Context, name string) ([]byte, error)
}

// DirStore is a Store on a mounted directory (a PVC of the NFS StorageClass).
// Writes are fsync'd: a record that was acknowledged must survive the server's
// loss, and only a synced write says anything about that.
type DirStore struct{ Dir string }

// Write implements Store.
func (s DirStore) Write(_ context.Context, name string, data []byte) error {
	p := filepath.Join(s.Dir, filepath.FromSlash(path.Clean("/"+name)))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Read implements Store.
func (s DirStore) Read(_ context.Context, name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(s.Dir, filepath.FromSlash(path.Clean("/"+name))))
}

// Handler serves the agent's API.
type Handler struct {
	// AppsURL is the demo app's Service URL (http://demo.rackdrill-probes.svc/).
	AppsURL string
	// AppsMarker must be in the app's answer.
	AppsMarker string
	Store      Store
	// Node is the node the agent runs on, reported in every detail.
	Node   string
	Client *http.Client
	// Demo makes the agent the demo app: it serves only its page and health.
	Demo bool
	// Kube makes a client of the rack's API from inside the cluster (the
	// kubernetes Service), a new connection each heal check; Namespace is
	// the heal Deployment's. nil: the agent has no heal check.
	Kube      func() (kubernetes.Interface, error)
	Namespace string
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var rep *Report
	if h.Demo && r.URL.Path != PathHealth {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "%s: rackdrill demo app on %s\n", DemoMarker, h.Node)
		return
	}
	needsStore := r.URL.Path == PathStorage || r.URL.Path == PathWrite || r.URL.Path == PathVerify
	switch {
	case needsStore && h.Store == nil:
		f := h.fail(errors.New("no data volume configured (--data-dir)"))
		rep = &f
	case r.URL.Path == PathApps && h.AppsURL == "":
		f := h.fail(errors.New("no apps URL configured (--apps-url)"))
		rep = &f
	default:
		rep = h.route(w, r)
		if rep == nil {
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if !rep.OK {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(rep)
}

// route answers a request for a configured check; nil when it already wrote.
func (h *Handler) route(w http.ResponseWriter, r *http.Request) *Report {
	var rep Report
	switch r.URL.Path {
	case PathHealth:
		rep = Report{OK: true, Detail: "agent on " + h.Node}
	case PathApps:
		ctx, cancel := boundedBy(r.Context(), r.URL.Query().Get("within"), 0)
		defer cancel()
		rep = h.apps(ctx)
	case PathHeal:
		rep = h.heal(r.Context(), r.URL.Query().Get("within"))
	case PathStorage:
		ctx, cancel := boundedBy(r.Context(), r.URL.Query().Get("within"), 0)
		defer cancel()
		rep = h.storage(ctx)
	case PathWrite:
		n, _ := strconv.Atoi(r.URL.Query().Get("records"))
		rep = h.write(r.Context(), n)
	case PathVerify:
		rep = h.verify(r.Context(), r.Body)
	default:
		http.NotFound(w, r)
		return nil
	}
	return &rep
}

func (h *Handler) fail(err error) Report {
	return Report{Error: fmt.Sprintf("agent on %s: %v", h.Node, err)}
}

// boundedBy is ctx bounded by within (a duration the harness gives the check
// so that the agent answers before the harness gives up), or by def when
// within is absent or not a positive duration (no bound when def is 0).
func boundedBy(ctx context.Context, within string, def time.Duration) (context.Context, context.CancelFunc) {
	d, err := time.ParseDuration(within)
	if err != nil || d <= 0 {
		d = def
	}
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

func (h *Handler) apps(ctx context.Context) Report {
	// Where a request that failed was stuck: the Service name's lookup (a
	// DNS server that never answers), the connection to one backend (a dead
	// pod still in the Service), or that backend's answer.
	var mu sync.Mutex
	stage := "lookup of " + h.AppsURL
	set := func(s string) { mu.Lock(); stage = s; mu.Unlock() }
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		ConnectStart: func(_, addr string) { set("connection to " + addr) },
		GotConn: func(i httptrace.GotConnInfo) {
			set("answer from " + i.Conn.RemoteAddr().String())
		},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.AppsURL, nil)
	if err != nil {
		return h.fail(err)
	}
	c := h.Client
	if c == nil {
		c = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	}
	resp, err := c.Do(req)
	if err != nil {
		mu.Lock()
		defer mu.Unlock()
		return h.fail(fmt.Errorf("%w (stuck at: %s)", err, stage))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return h.fail(err)
	}
	if resp.StatusCode != http.StatusOK {
		return h.fail(fmt.Errorf("GET %s: status %d", h.AppsURL, resp.StatusCode))
	}
	if h.AppsMarker != "" && !strings.Contains(string(body), h.AppsMarker) {
		return h.fail(fmt.Errorf("GET %s: answer lacks the marker %q", h.AppsURL, h.AppsMarker))
	}
	return Report{OK: true, Detail: fmt.Sprintf("%s from %s", resp.Status, h.Node)}
}

func (h *Handler) storage(ctx context.Context) Report {
	name := fmt.Sprintf("storage-check/%s", h.Node)
	want := []byte(fmt.Sprintf("%s %d", h.Node, time.Now().UnixNano()))
	if err := h.Store.Write(ctx, name, want); err != nil {
		return h.fail(fmt.Errorf("write %s: %w", name, err))
	}
	got, err := h.Store.Read(ctx, name)
	if err != nil {
		return h.fail(fmt.Errorf("read %s: %w", name, err))
	}
	if string(got) != string(want) {
		return h.fail(fmt.Errorf("read %s: got %q, wrote %q", name, got, want))
	}
	return Report{OK: true, Detail: "wrote and read back " + name}
}

// write stores n records of random content under a fresh run prefix and returns
// their checksums; the harness keeps them to verify after recovery.
func (h *Handler) write(ctx context.Context, n int) Report {
	if n < 1 || n > 1000 {
		return h.fail(errors.New("records must be 1 to 1000"))
	}
	var run [6]byte
	_, _ = rand.Read(run[:])
	recs := map[string]string{}
	for i := 0; i < n; i++ {
		data := make([]byte, 4096)
		_, _ = rand.Read(data)
		name := fmt.Sprintf("data/%s/rec-%04d", hex.EncodeToString(run[:]), i)
		if err := h.Store.Write(ctx, name, data); err != nil {
			return h.fail(fmt.Errorf("write %s: %w", name, err))
		}
		sum := sha256.Sum256(data)
		recs[name] = hex.EncodeToString(sum[:])
	}
	return Report{OK: true, Detail: fmt.Sprintf("wrote %d records", n), Records: recs}
}

func (h *Handler) verify(ctx context.Context, body io.Reader) Report {
	var want map[string]string
	if err := json.NewDecoder(io.LimitReader(body, 1<<20)).Decode(&want); err != nil {
		return h.fail(fmt.Errorf("read the records to verify: %w", err))
	}
	if len(want) == 0 {
		return h.fail(errors.New("no records to verify"))
	}
	var bad []string
	for name, sum := range want {
		data, err := h.Store.Read(ctx, name)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		got := sha256.Sum256(data)
		if hex.EncodeToString(got[:]) != sum {
			bad = append(bad, name+": checksum differs")
		}
	}
	if len(bad) > 0 {
		return h.fail(fmt.Errorf("%d of %d records lost or changed; first: %s", len(bad), len(want), bad[0]))
	}
	return Report{OK: true, Detail: fmt.Sprintf("%d records intact", len(want))}
}
