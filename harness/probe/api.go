package probe

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// RESTConfig builds a client config from a kubeconfig, pointed at server (the
// control-plane endpoint under test: the VIP) rather than wherever the
// kubeconfig points, with no client-side rate limit and no retries, so that each
// probe request is exactly one request.
func RESTConfig(kubeconfig []byte, server string) (*rest.Config, error) {
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("read kubeconfig: %w", err)
	}
	if server != "" {
		cfg.Host = server
	}
	cfg.QPS, cfg.Burst = -1, 0
	cfg.Timeout = 0 // bounded by the probe's context instead
	cfg.UserAgent = "rackdrill-probe"
	return cfg, nil
}

// API checks the Kubernetes API as kubectl would: a list of nodes through the
// control-plane endpoint. A list without a resourceVersion is a quorum read from
// etcd, so it fails when etcd has lost quorum, as `kubectl get` does, where a
// GET /version or /livez would still answer.
type API struct {
	client kubernetes.Interface
}

// NewAPI returns the api probe for cfg.
func NewAPI(cfg *rest.Config) (*API, error) {
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("api probe: %w", err)
	}
	return &API{client: c}, nil
}

func (p *API) Name() string { return "api" }

// Check implements Probe.
func (p *API) Check(ctx context.Context) Result {
	start := time.Now()
	nodes, err := p.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return Result{Took: time.Since(start), Err: fmt.Errorf("list nodes: %w", err)}
	}
	return Result{OK: true, Took: time.Since(start), Detail: fmt.Sprintf("resourceVersion %s", nodes.ResourceVersion)}
}
