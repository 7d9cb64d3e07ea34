package providers

import (
	"context"
	"fmt"
	"io"

	"github.com/go-logr/logr"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/cluster/containers"
	"rackdrill.dev/rackdrill/harness/cluster/k3d"
	sshprovider "rackdrill.dev/rackdrill/harness/cluster/ssh"
	"rackdrill.dev/rackdrill/harness/topology"
)

// Options are every provider's settings; each provider reads those it has.
type Options struct {
	Log       logr.Logger
	Progress  io.Writer // each step of a build
	Artifacts string    // kubeconfig and build files (containers, k3d)
	// KeepOnFailure keeps a half-built lab for inspection (containers).
	KeepOnFailure bool
	// LabWaits are the limits of the lab build's waits (containers).
	LabWaits containers.Intervals
	// AcceptNewHostKeys records the key of a host known_hosts lacks (ssh).
	AcceptNewHostKeys bool
	// Kubeconfig is a kubeconfig list the ssh provider reads instead of the
	// servers' admin kubeconfig, or only when no server gives one
	// (KubeconfigFallback).
	Kubeconfig         string
	KubeconfigFallback bool
}

// Option sets one of the Options.
type Option func(*Options)

func WithLogger(l logr.Logger) Option             { return func(o *Options) { o.Log = l } }
func WithProgress(w io.Writer) Option             { return func(o *Options) { o.Progress = w } }
func WithArtifacts(dir string) Option             { return func(o *Options) { o.Artifacts = dir } }
func WithKeepOnFailure(keep bool) Option          { return func(o *Options) { o.KeepOnFailure = keep } }
func WithLabWaits(iv containers.Intervals) Option { return func(o *Options) { o.LabWaits = iv } }
func WithKubeconfig(paths string, fallback bool) Option {
	return func(o *Options) { o.Kubeconfig, o.KubeconfigFallback = paths, fallback }
}
func WithAcceptNewHostKeys(accept bool) Option {
	return func(o *Options) { o.AcceptNewHostKeys = accept }
}

// Names are the providers For knows, in the order the docs list them.
var Names = []topology.ProviderName{topology.ProviderContainers, topology.ProviderK3d, topology.ProviderSSH}

// Builds reports whether rackdrill builds and removes the racks of provider
// p (the lab, k3d), rather than adopting one it must never remove (ssh).
func Builds(p topology.ProviderName) bool { return p != topology.ProviderSSH }

// For returns the provider of rack r. Nothing connects yet: the containers
// and k3d providers reach Docker on first use, the ssh provider checks its
// inventory's keys and known_hosts, and connects when asked for machines.
// The ssh provider holds connections: close it (Close) when done.
func For(r *topology.Rack, opts ...Option) (cluster.Provider, error) {
	o := Options{Log: logr.Discard(), Progress: io.Discard, Artifacts: "_artifacts"}
	for _, opt := range opts {
		opt(&o)
	}
	switch r.Spec.Provider {
	case topology.ProviderContainers, "":
		copts := []containers.Option{containers.WithLogger(o.Log), containers.WithArtifacts(o.Artifacts),
			containers.WithProgress(o.Progress), containers.WithKeepOnFailure(o.KeepOnFailure)}
		if o.LabWaits != nil {
			copts = append(copts, containers.WithIntervals(o.LabWaits))
		}
		return containers.NewProvider(r.Metadata.Name, copts...), nil
	case topology.ProviderK3d:
		return k3d.NewProvider(r, o.Artifacts, k3d.WithLogger(o.Log), k3d.WithProgress(o.Progress)), nil
	case topology.ProviderSSH:
		return sshprovider.NewProvider(r, sshprovider.WithLogger(o.Log), sshprovider.WithAcceptNewHostKeys(o.AcceptNewHostKeys),
			sshprovider.WithKubeconfig(o.Kubeconfig, o.KubeconfigFallback))
	}
	return nil, fmt.Errorf("spec.provider %q: unknown (known: %v)", r.Spec.Provider, Names)
}

// Close releases what the provider holds (the ssh provider's connections).
func Close(p cluster.Provider) error {
	if c, ok := p.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Ensure brings up rack r through p unless its machines exist already, and
// says which on out; it reports whether it built the rack. It never builds a
// rack rackdrill adopts.
func Ensure(ctx context.Context, p cluster.Provider, r *topology.Rack, out io.Writer) (built bool, err error) {
	if !Builds(r.Spec.Provider) {
		return false, nil
	}
	if pr, ok := p.(cluster.Preparer); ok && r.Spec.Provider == topology.ProviderK3d {
		// Said in seconds, before anything is listed or created.
		if err := pr.Prepare(ctx); err != nil {
			return false, err
		}
	}
	nodes, err := p.Nodes(ctx)
	if err != nil {
		return false, err
	}
	if len(nodes) > 0 {
		fmt.Fprintf(out, "rack %s is up already (%d machines): using it\n", r.Metadata.Name, len(nodes))
		return false, nil
	}
	if pr, ok := p.(cluster.Preparer); ok {
		if err := pr.Prepare(ctx); err != nil {
			return false, err
		}
	}
	return true, p.Up(ctx, r)
}
