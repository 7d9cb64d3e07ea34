package probe

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/go-logr/logr"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/probe/agent"
	"rackdrill.dev/rackdrill/harness/rackclient"
	"rackdrill.dev/rackdrill/harness/topology"
)

// Pacing of the probes that act on the cluster rather than just look at it.
const (
	healInterval = 5 * time.Second
	healTimeout  = 30 * time.Second
	dataInterval = 2 * time.Second
	dataRecords  = 64
)

// ForRack builds the matrix's probes against rack r, reached through provider
// p: api through the control-plane endpoint, heal on the heal Deployment, lan
// through the ingress IP, internet through the tunnel's public address (from
// the provider's Internet vantage point when it has one), and apps, storage and
// data through every node's agent. Probes of parts the rack does not have are
// returned as unprobed, with the reason.
func ForRack(ctx context.Context, r *topology.Rack, p any, log logr.Logger) ([]Probe, map[string]string, *Data, error) {
	src, ok := p.(cluster.KubeconfigSource)
	if !ok {
		return nil, nil, nil, fmt.Errorf("the probes need the kubeconfig of rack %s, and its provider does not provide one in this version of rackdrill",
			r.Metadata.Name)
	}
	kc, err := src.Kubeconfig(ctx)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("kubeconfig of rack %s: %w", r.Metadata.Name, err)
	}
	cfg, err := rackclient.ProbeConfig(kc, r.APIServerURL())
	if err != nil {
		return nil, nil, nil, err
	}
	api, err := NewAPI(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	spec := r.Spec
	var endpoints []string
	for _, n := range spec.Nodes {
		if n.HasRole(topology.RoleServer) || n.HasRole(topology.RoleWorker) {
			endpoints = append(endpoints, net.JoinHostPort(n.Address, strconv.Itoa(AgentNodePort)))
		}
	}
	agents := NewAgents(endpoints)
	probes := []Probe{api, NewHeal(agents, healInterval, healTimeout)}
	unprobed := map[string]string{}
	if spec.Ingress != nil {
		opts := []HTTPOption{WithHost(spec.Probes.Host), WithMarker(agent.DemoMarker)}
		if forget, err := ForgetNeighbour(ctx, spec.Ingress.IP); err == nil {
			opts = append(opts, WithForget(forget))
		} else {
			// A LAN client with a warm ARP cache: said, since it may hide a
			// lost announcement (metallb-dropped).
			log.Info("the lan probe cannot forget its neighbour entry for the ingress IP: it samples as a warm client",
				"ingress", spec.Ingress.IP, "why", err.Error())
		}
		probes = append(probes, NewHTTP("lan", "http://"+spec.Ingress.IP+"/", opts...))
	} else {
		unprobed["lan"] = "the rack has no ingress (spec.ingress)"
	}
	if t := spec.Tunnel; t != nil && len(t.Ports) > 0 {
		opts := []HTTPOption{WithHost(spec.Probes.Host), WithMarker(agent.DemoMarker)}
		if v, ok := p.(cluster.InternetVantage); ok {
			dial, err := v.InternetDialer(ctx)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("internet vantage point: %w", err)
			}
			opts = append(opts, WithDialer(dial))
		}
		addr := net.JoinHostPort(t.Server.PublicAddress, strconv.Itoa(t.Ports[0].Public))
		probes = append(probes, NewHTTP("internet", "http://"+addr+"/", opts...))
	} else {
		unprobed["internet"] = "the rack has no tunnel (spec.tunnel)"
	}
	probes = append(probes, NewApps(agents))
	var data *Data
	if spec.Storage != nil && len(spec.Storage.StorageClasses) > 0 {
		data = NewData(agents, dataRecords, dataInterval, healTimeout)
		probes = append(probes, NewStorage(agents), data)
	} else {
		unprobed["storage"] = "the rack has no StorageClass (spec.storage)"
		unprobed["data"] = unprobed["storage"]
	}
	return probes, unprobed, data, nil
}
