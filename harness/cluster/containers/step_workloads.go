package containers

// Step: the probe workloads and the demo app.

import (
	"context"
	"fmt"

	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/probe"
	agentpkg "rackdrill.dev/rackdrill/harness/probe/agent"
)

// workloads deploys what the probes need (the demo app behind its Ingress, the
// heal Deployment, the agents) and waits until the demo app answers through the
// ingress IP.
func (u *upRun) workloads(ctx context.Context) error {
	ap, err := u.applier(ctx)
	if err != nil {
		return err
	}
	// The cluster knows the lab's images by the names the node image preloads.
	wc := probe.WorkloadConfig{Namespace: u.r.Spec.Probes.Namespace, Image: lab.Alias("agent"), IngressHost: u.r.Spec.Probes.Host, IngressClass: "traefik"}
	if st := u.r.Spec.Storage; st != nil && st.NFS != nil {
		// The lab's pods cannot mount NFS: the agents speak it from user space.
		wc.NFSServer, wc.NFSExport = u.r.NFSAddress(), st.NFS.Exports[0]
	}
	if err := probe.Deploy(ctx, ap, wc); err != nil {
		return err
	}
	if u.r.Spec.Ingress == nil {
		return nil
	}
	lan := probe.NewHTTP("lan", "http://"+u.r.Spec.Ingress.IP+"/", probe.WithHost(u.r.Spec.Probes.Host), probe.WithMarker(agentpkg.DemoMarker))
	return u.waitProbe(ctx, lan, IntervalLANProbe, "through the ingress IP")
}

// waitProbe waits until p answers, for at most limit.
func (u *upRun) waitProbe(ctx context.Context, p probe.Probe, limit Interval, where string) error {
	return u.wait(ctx, limit, func() error {
		cctx, cancel := context.WithTimeout(ctx, u.r.Spec.Probes.Timeout.Duration)
		defer cancel()
		if r := p.Check(cctx); !r.OK {
			return fmt.Errorf("the demo app does not answer %s: %v", where, r.Err)
		}
		return nil
	})
}
