package framework

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/conform"
	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/preflight"
	"rackdrill.dev/rackdrill/harness/probe"
)

// CheckLimit bounds one conformance or pre-upgrade check.
const CheckLimit = 2 * time.Minute

type targetCache struct {
	once sync.Once
	t    *conform.Target
	err  error
}

// Target is the rack as the conformance checks see it, built once per run.
func (e *Env) Target(ctx context.Context) (*conform.Target, error) {
	e.target.once.Do(func() { e.target.t, e.target.err = e.buildTarget(ctx) })
	return e.target.t, e.target.err
}

func (e *Env) buildTarget(ctx context.Context) (*conform.Target, error) {
	if e.Nodes == nil {
		if err := e.Connect(ctx); err != nil {
			return nil, err
		}
	}
	nodes, err := e.Nodes.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	cfg, err := e.Client.Config(ctx)
	if err != nil {
		return nil, fmt.Errorf("the API of rack %s: %w", e.Rack.Metadata.Name, err)
	}
	t := &conform.Target{Rack: e.Rack, Provider: e.Provider, Nodes: nodes, REST: cfg}
	if t.Kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if t.Dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		return nil, err
	}
	probes, _, data, err := probe.ForRack(ctx, e.Rack, e.Nodes, e.Log)
	if err != nil {
		return nil, err
	}
	t.Probes, t.Data = map[string]probe.Probe{}, data
	for _, p := range probes {
		t.Probes[p.Name()] = p
	}
	if v, ok := e.Nodes.(cluster.InternetVantage); ok {
		if t.Internet, err = v.InternetDialer(ctx); err != nil {
			return nil, fmt.Errorf("internet vantage point: %w", err)
		}
	}
	return t, nil
}

// RecordCheck keeps a conformance or pre-upgrade check's result for run.json.
func (e *Env) RecordCheck(r conform.Result) {
	e.mu.Lock()
	e.checks = append(e.checks, r)
	e.mu.Unlock()
	if e.Checked != nil {
		e.Checked(r)
	}
}

// UpgradeTarget is the release the pre-upgrade checks look at (--to).
func (e *Env) UpgradeTarget() (preflight.Minor, error) {
	if e.UpgradeTo == "" {
		return preflight.Minor{}, fmt.Errorf("no target release: give it with --to (rackdrill preflight --to v1.34.x)")
	}
	return preflight.ParseMinor(e.UpgradeTo)
}

// Etcdutl is the path of etcdutl on this machine (built on first use).
func (e *Env) Etcdutl(ctx context.Context) (string, error) {
	b, err := lab.NewToolBuilder(io.Discard)
	if err != nil {
		return "", err
	}
	return b.Etcdutl(ctx)
}
