package conform

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/probe"
	"rackdrill.dev/rackdrill/harness/runrecord"
	"rackdrill.dev/rackdrill/harness/topology"
)

// Target is the rack under check: its topology and the ways to look at it.
type Target struct {
	Rack *topology.Rack
	// Provider is how the rack was built or adopted.
	Provider topology.ProviderName
	Nodes    []cluster.Node
	// REST holds the rack's admin credentials, pointed at the control-plane
	// endpoint (the VIP).
	REST    *rest.Config
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	// Internet dials from the Internet vantage point; nil when the provider
	// has none (then the tunnel's isolation cannot be checked).
	Internet cluster.Dialer
	// Probes are the matrix's probes by name (one sample each); Data is the
	// data probe, which writes before it checks.
	Probes map[string]probe.Probe
	Data   *probe.Data
	// Now is the clock certificates are checked against.
	Now func() time.Time
}

// Check is one conformance check: a sentence of the architecture document that
// the rack must make true.
type Check struct {
	// Name says what holds, as the spec's text.
	Name string
	// Family groups checks for labels and reports: control-plane, api,
	// load-balancer, metallb, tunnel, storage, scheduling, architecture,
	// certificates, ups, health.
	Family string
	// Field is the topology field the check compares the rack with.
	Field string
	// Skip says why the check does not apply to this rack ("" when it does).
	Skip func(t *Target) string
	// Run returns what it observed, in a line, or an error naming the field
	// and the observed value.
	Run func(ctx context.Context, t *Target) (string, error)
}

// Result is a check's outcome, for reports and tests.
type Result = runrecord.Check

// Checks are every conformance check, in the order the suite runs them.
func Checks() []Check {
	var all []Check
	for _, group := range [][]Check{controlPlaneChecks(), apiChecks(), loadBalancerChecks(), metallbChecks(),
		tunnelChecks(), storageChecks(), schedulingChecks(), architectureChecks(), certificateChecks(),
		upsChecks(), healthChecks()} {
		all = append(all, group...)
	}
	return all
}

// Run runs one check with a bound and returns its Result.
func Run(ctx context.Context, t *Target, c Check, limit time.Duration) Result {
	res := Result{Check: c.Name, Family: c.Family, Field: c.Field}
	if c.Skip != nil {
		if why := c.Skip(t); why != "" {
			res.Skipped = why
			return res
		}
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	obs, err := c.Run(ctx, t)
	res.Observed = obs
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.Passed = true
	return res
}

// fieldError is a mismatch between a topology field and the rack.
func fieldError(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...))
}

// problems collects the mismatches of one check, so that a check reports every
// node or object that is wrong, not just the first.
type problems []error

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, fieldError(field, format, args...))
}

func (p problems) err() error { return errors.Join(p...) }

// nodeField is the path of the topology's node by name.
func nodeField(r *topology.Rack, name string) string {
	for i, n := range r.Spec.Nodes {
		if n.Name == name {
			return fmt.Sprintf("spec.nodes[%d] (%s)", i, name)
		}
	}
	return "spec.nodes (" + name + ")"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// kubeNode finds the rack's machine by name.
func (t *Target) node(name string) cluster.Node {
	for _, n := range t.Nodes {
		if n.Name() == name {
			return n
		}
	}
	return nil
}
