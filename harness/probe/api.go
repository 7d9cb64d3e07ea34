package probe

import (
	"context"
	"fmt"
	"net"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// API checks the Kubernetes API as kubectl would: a list of nodes through the
// control-plane endpoint. A list without a resourceVersion is a quorum read from
// etcd, so it fails when etcd has lost quorum, as `kubectl get` does, where a
// GET /version or /livez would still answer.
//
// Like kubectl, each sample is a new client with a new connection (TCP and
// TLS), even after a sample that timed out: a client
// that keeps its connection to a load balancer sees it come back sooner than
// a new one does, because the balancer has not yet brought its backends back
// (measured on the lab after server-kill-2: 5.2 s for a warm client, 10.7 s
// for a new one).
type API struct {
	cfg *rest.Config
}

// NewAPI returns the api probe for cfg.
func NewAPI(cfg *rest.Config) (*API, error) {
	cfg = rest.CopyConfig(cfg)
	// A dialer of its own keeps client-go from sharing a cached transport
	// with the other clients of cfg, whose connections it closes.
	cfg.Dial = (&net.Dialer{Timeout: 2 * time.Second}).DialContext
	if _, err := rest.HTTPClientFor(cfg); err != nil {
		return nil, fmt.Errorf("api probe: %w", err)
	}
	return &API{cfg: cfg}, nil
}

func (p *API) Name() string { return "api" }

// Check implements Probe.
func (p *API) Check(ctx context.Context) Result {
	start := time.Now()
	// A client of its own per sample: no connection outlives it. Closing
	// idle connections is not enough: one whose request timed out is still
	// busy while the server holds it, and the next sample would reuse it,
	// pinned by a TCP load balancer to the server that holds it.
	hc, err := rest.HTTPClientFor(p.cfg)
	if err != nil {
		return Result{Took: time.Since(start), Err: fmt.Errorf("api probe: %w", err)}
	}
	defer hc.CloseIdleConnections()
	c, err := kubernetes.NewForConfigAndClient(p.cfg, hc)
	if err != nil {
		return Result{Took: time.Since(start), Err: fmt.Errorf("api probe: %w", err)}
	}
	nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return Result{Took: time.Since(start), Err: fmt.Errorf("list nodes: %w", err)}
	}
	return Result{OK: true, Took: time.Since(start), Detail: fmt.Sprintf("resourceVersion %s", nodes.ResourceVersion)}
}
