package probe

import (
	"context"
	"fmt"
	"net"
	"net/http"
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
// Like kubectl, each sample opens a new connection (TCP and TLS): a client
// that keeps its connection to a load balancer sees it come back sooner than
// a new one does, because the balancer has not yet brought its backends back
// (measured on the lab after server-kill-2: 5.2 s for a warm client, 10.7 s
// for a new one).
type API struct {
	client kubernetes.Interface
	http   *http.Client
}

// NewAPI returns the api probe for cfg, with a transport of its own.
func NewAPI(cfg *rest.Config) (*API, error) {
	cfg = rest.CopyConfig(cfg)
	// A dialer of its own keeps client-go from sharing a cached transport
	// with the other clients of cfg, whose connections it closes.
	cfg.Dial = (&net.Dialer{Timeout: 2 * time.Second}).DialContext
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("api probe: %w", err)
	}
	c, err := kubernetes.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("api probe: %w", err)
	}
	return &API{client: c, http: hc}, nil
}

func (p *API) Name() string { return "api" }

// Check implements Probe.
func (p *API) Check(ctx context.Context) Result {
	// The next sample is a new client's: no connection is kept.
	defer p.http.CloseIdleConnections()
	start := time.Now()
	nodes, err := p.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return Result{Took: time.Since(start), Err: fmt.Errorf("list nodes: %w", err)}
	}
	return Result{OK: true, Took: time.Since(start), Detail: fmt.Sprintf("resourceVersion %s", nodes.ResourceVersion)}
}
