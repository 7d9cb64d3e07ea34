package rackclient

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"rackdrill.dev/rackdrill/harness/cluster"
)

const (
	// OperationsTimeout bounds one request of the harness's operations.
	OperationsTimeout = 30 * time.Second
	// FaultTimeout bounds one request of a fault (a Deployment scaled, a
	// DaemonSet patched): a run killed mid-request has it land within this,
	// which is what `rackdrill recover` waits out.
	FaultTimeout = 15 * time.Second
	// UserAgent and FieldManager name the harness to the API server.
	UserAgent    = "rackdrill"
	FieldManager = "rackdrill"
)

// config reads kubeconfig and points it at server (the control-plane
// endpoint under test: the VIP) rather than wherever the kubeconfig points.
func config(kubeconfig []byte, server string) (*rest.Config, error) {
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("read the rack's kubeconfig: %w", err)
	}
	if server != "" {
		cfg.Host = server
	}
	return cfg, nil
}

// ProbeConfig is the probes' config: no client-side rate limit and no
// timeout of its own (each sample is bounded by the probe's context), so that
// each probe request is exactly one request.
func ProbeConfig(kubeconfig []byte, server string) (*rest.Config, error) {
	cfg, err := config(kubeconfig, server)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = -1, 0
	cfg.Timeout = 0
	cfg.UserAgent = UserAgent + "-probe"
	return cfg, nil
}

// OperationsConfig is the config of everything else the harness asks the
// API: each request bounded by timeout (OperationsTimeout, FaultTimeout).
func OperationsConfig(kubeconfig []byte, server string, timeout time.Duration) (*rest.Config, error) {
	cfg, err := config(kubeconfig, server)
	if err != nil {
		return nil, err
	}
	cfg.Timeout = timeout
	cfg.UserAgent = UserAgent
	return cfg, nil
}

// Client is the rack's API for operations, connected on first use: the
// harness is built before the rack answers (a run that brings it up, a
// recover after a power drill).
type Client struct {
	src     cluster.KubeconfigSource
	server  string
	timeout time.Duration

	mu  sync.Mutex
	cfg *rest.Config
	cs  kubernetes.Interface
}

// New returns the client of the rack whose kubeconfig src gives, pointed at
// server, each request bounded by timeout.
func New(src cluster.KubeconfigSource, server string, timeout time.Duration) *Client {
	return &Client{src: src, server: server, timeout: timeout}
}

// Config is the operations config, the kubeconfig read on first use.
func (c *Client) Config(ctx context.Context) (*rest.Config, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cfg != nil {
		return c.cfg, nil
	}
	kc, err := c.src.Kubeconfig(ctx)
	if err != nil {
		return nil, err
	}
	if c.cfg, err = OperationsConfig(kc, c.server, c.timeout); err != nil {
		return nil, err
	}
	return c.cfg, nil
}

// Clientset is the typed client of the operations config.
func (c *Client) Clientset(ctx context.Context) (kubernetes.Interface, error) {
	cfg, err := c.Config(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cs == nil {
		if c.cs, err = kubernetes.NewForConfig(cfg); err != nil {
			return nil, err
		}
	}
	return c.cs, nil
}
