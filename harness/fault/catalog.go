package fault

import (
	"fmt"
	"slices"
	"strings"

	"rackdrill.dev/rackdrill/harness/topology"
)

// Names are the faults of the documented impact matrix, in matrix order.
var Names = []string{
	"server-kill-1", "server-kill-2", "lb-master-lost", "cp-lb-lost", "metallb-dropped",
	"tunnel-client-cut", "tunnel-server-lost", "nfs-lost", "worker-lost", "ups-power-loss",
}

// Step is one action of a plan: where it runs and what it does.
type Step struct {
	Where  string `json:"where"`
	Action string `json:"action"`
}

// Plan says what a fault would do to a rack, without touching it: `rackdrill
// plan` prints it, the ssh provider asks for confirmation of it, and the faults
// are built from the same target choice.
type Plan struct {
	Fault      string `json:"fault"`
	Applicable bool   `json:"applicable"`
	// Why a fault is not applicable (no keepalived in k3d, no UPS in the rack).
	Why string `json:"why,omitempty"`
	// Targets are the nodes (or cluster objects) the fault acts on.
	Targets []string `json:"targets"`
	// Choice says how a target is picked at injection when it depends on the
	// rack's state (the etcd leader).
	Choice string `json:"choice,omitempty"`
	Inject []Step `json:"inject"`
	Revert []Step `json:"revert"`
	// LosesQuorum: the fault takes etcd below quorum (the API stops
	// answering writes); on a real rack it needs --allow-quorum-loss.
	LosesQuorum bool `json:"losesQuorum,omitempty"`
	// Power: the fault powers machines off; on a real rack it needs
	// --allow-power and a way to power every machine on again.
	Power bool `json:"power,omitempty"`
	// Remote are the commands the fault runs on a real rack's machines (ssh
	// provider). The server kills name their machines "etcd leader" and
	// "next server": they are chosen at injection.
	Remote []RemoteStep `json:"remote,omitempty"`
}

// Placeholders of the server kills' steps, in order.
var serverKillTargets = []string{"etcd leader", "next server"}

// remote adds the steps of a fault run over SSH, each machine's dead-man
// timer first.
func (pl *Plan) remote(steps []RemoteStep) {
	pl.Remote = steps
	armed := map[string]bool{}
	for _, s := range steps {
		if !armed[s.Node] {
			armed[s.Node] = true
			pl.Inject = append(pl.Inject, Step{s.Node, fmt.Sprintf("dead-man timer (systemd-run --on-active=%s, re-armed while rackdrill runs) that runs every revert of this machine below by itself, last step first", deadMan(steps, s.Node))})
		}
		pl.Inject = append(pl.Inject, Step{s.Node, "sh -c " + shellQuote(s.Inject)})
	}
	for i := len(steps) - 1; i >= 0; i-- {
		pl.Revert = append(pl.Revert, Step{steps[i].Node, "sh -c " + shellQuote(steps[i].Revert)})
	}
	done := map[string]bool{}
	for _, s := range steps {
		if !done[s.Node] {
			done[s.Node] = true
			pl.Revert = append(pl.Revert, Step{s.Node, "cancel the dead-man timer"})
		}
	}
}

// shellQuote makes s one word for a POSIX shell, as the plan prints it.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// PlanFor describes fault name on rack r under provider p.
func PlanFor(name string, r *topology.Rack, p topology.ProviderName) (Plan, error) {
	if !slices.Contains(Names, name) {
		return Plan{}, fmt.Errorf("unknown fault %q (known: %s)", name, strings.Join(Names, ", "))
	}
	pl := Plan{Fault: name, Applicable: true}
	na := func(why string) (Plan, error) { pl.Applicable, pl.Why = false, why; return pl, nil }
	names := func(ns []*topology.Node) []string {
		var out []string
		for _, n := range ns {
			out = append(out, n.Name)
		}
		return out
	}
	servers := names(r.NodesWithRole(topology.RoleServer))
	down := func(nodes []string, how string) {
		for _, n := range nodes {
			pl.Inject = append(pl.Inject, Step{n, how})
			pl.Revert = append(pl.Revert, Step{n, powerOn(p)})
		}
	}
	switch name {
	case "server-kill-1", "server-kill-2":
		count := 1
		if name == "server-kill-2" {
			count = 2
		}
		if len(servers) < count+1 && name == "server-kill-1" {
			return na(fmt.Sprintf("the rack has %d server: killing it is not a failover", len(servers)))
		}
		if len(servers) < count {
			return na(fmt.Sprintf("the rack has %d server", len(servers)))
		}
		pl.Targets = servers
		pl.Choice = "the server holding the etcd leader (so that an election happens)"
		if count == 2 {
			pl.Choice += ", and the next server in topology order"
		}
		pl.LosesQuorum = len(servers)-count < len(servers)/2+1
		if p == topology.ProviderSSH {
			var steps []RemoteStep
			for _, who := range serverKillTargets[:count] {
				st := ServiceSteps(r, topology.ServiceServer, servers[0])[0]
				st.Node = who
				steps = append(steps, st)
			}
			pl.remote(steps)
			break
		}
		for _, who := range []string{"etcd leader", "next server"}[:count] {
			pl.Inject = append(pl.Inject, Step{who, hardKill(p, r)})
			pl.Revert = append(pl.Revert, Step{who, powerOn(p) + "; wait until it rejoins etcd"})
		}
	case "lb-master-lost":
		ka := r.Spec.ControlPlane.Keepalived
		if ka == nil || p == topology.ProviderK3d {
			return na("no keepalived VIP in this rack (k3d's load balancer has no VRRP)")
		}
		master := ka.Master()
		pl.Targets = []string{master}
		if p == topology.ProviderSSH {
			pl.remote(ServiceSteps(r, topology.ServiceKeepalived, master))
		} else if len(r.Node(master).Roles) > 1 {
			pl.Inject = append(pl.Inject, Step{master, "systemctl stop keepalived"})
			pl.Revert = append(pl.Revert, Step{master, "systemctl start keepalived"})
		} else {
			down([]string{master}, "docker kill (the keepalived MASTER dies)")
		}
	case "cp-lb-lost":
		cp := r.Spec.ControlPlane
		if p == topology.ProviderK3d {
			pl.Targets = []string{"serverlb"} // k3d's load balancer container
			pl.Inject = []Step{{"serverlb", "docker stop (k3d's API load balancer)"}}
			pl.Revert = []Step{{"serverlb", "docker start"}}
			break
		}
		var lbs []string
		if cp.Keepalived != nil {
			for _, m := range cp.Keepalived.Members {
				lbs = append(lbs, m.Node)
			}
		}
		if cp.HAProxy != nil {
			for _, n := range cp.HAProxy.Nodes {
				if !slices.Contains(lbs, n) {
					lbs = append(lbs, n)
				}
			}
		}
		if len(lbs) == 0 {
			return na("the rack has no control-plane load balancer (spec.controlPlane.keepalived and haproxy are empty)")
		}
		pl.Targets = lbs
		if p == topology.ProviderSSH {
			var steps []RemoteStep
			for _, n := range lbs {
				if cp.Keepalived != nil && slices.ContainsFunc(cp.Keepalived.Members, func(m topology.KeepalivedMember) bool { return m.Node == n }) {
					steps = append(steps, ServiceSteps(r, topology.ServiceKeepalived, n)...)
				}
				if cp.HAProxy != nil && slices.Contains(cp.HAProxy.Nodes, n) {
					steps = append(steps, ServiceSteps(r, topology.ServiceHAProxy, n)...)
				}
			}
			pl.remote(steps)
			break
		}
		for _, n := range lbs {
			if p == topology.ProviderSSH || len(r.Node(n).Roles) > 1 {
				pl.Inject = append(pl.Inject, Step{n, "systemctl stop keepalived haproxy"})
				pl.Revert = append(pl.Revert, Step{n, "systemctl start haproxy keepalived"})
			} else {
				down([]string{n}, "docker stop")
			}
		}
	case "metallb-dropped":
		m := r.Spec.MetalLB
		if m == nil {
			return na("the rack has no MetalLB (spec.metallb is empty)")
		}
		pl.Targets = []string{m.Namespace + "/controller", m.Namespace + "/speaker"}
		pl.Inject = []Step{
			{"cluster", fmt.Sprintf("scale Deployment %s/controller to 0", m.Namespace)},
			{"cluster", fmt.Sprintf("move DaemonSet %s/speaker off every node (a nodeSelector no node has)", m.Namespace)},
		}
		pl.Revert = []Step{{"cluster", "restore the exact previous specs of both"}}
	case "tunnel-client-cut":
		t := r.Spec.Tunnel
		if t == nil {
			return na("the rack has no tunnel (spec.tunnel is empty)")
		}
		obj := t.Client.Namespace + "/" + t.Client.Deployment
		pl.Targets = []string{obj}
		pl.Inject = []Step{{"cluster", "scale Deployment " + obj + " to 0"}}
		pl.Revert = []Step{{"cluster", "scale Deployment " + obj + " back to its previous replicas"}}
	case "tunnel-server-lost":
		t := r.Spec.Tunnel
		if t == nil {
			return na("the rack has no tunnel (spec.tunnel is empty)")
		}
		pl.Targets = []string{t.Server.Node}
		if p == topology.ProviderSSH {
			pl.remote(ServiceSteps(r, topology.ServiceTunnelServer, t.Server.Node))
		} else {
			down([]string{t.Server.Node}, "docker stop (the VPS dies)")
		}
	case "nfs-lost":
		s := r.Spec.Storage
		if s == nil || s.NFS == nil {
			return na("the rack has no NFS server (spec.storage.nfs is empty)")
		}
		pl.Targets = []string{s.NFS.Node}
		if p == topology.ProviderSSH {
			pl.remote(ServiceSteps(r, topology.ServiceNFS, s.NFS.Node))
		} else {
			down([]string{s.NFS.Node}, "docker stop (the NAS dies)")
		}
	case "worker-lost":
		workers := names(r.NodesWithRole(topology.RoleWorker))
		if len(workers) < 2 {
			return na(fmt.Sprintf("the rack has %d worker: losing it is not a failover", len(workers)))
		}
		pl.Targets = workers[:1]
		if p == topology.ProviderSSH {
			pl.remote(ServiceSteps(r, topology.ServiceWorker, workers[0]))
			break
		}
		pl.Inject = []Step{{workers[0], hardKill(p, r)}}
		pl.Revert = []Step{{workers[0], powerOn(p) + "; wait until it is Ready"}}
	case "ups-power-loss":
		u := r.Spec.UPS
		if u == nil {
			return na("the rack has no UPS (spec.ups is empty)")
		}
		if p == topology.ProviderK3d {
			return na("k3d has no machines to power off")
		}
		pl.Power = true
		pl.Targets = append(pl.Targets, u.Node)
		if p == topology.ProviderSSH {
			// Every machine's own way back, UPS master first.
			pl.Targets = append(pl.Targets, slices.Concat(u.ShutdownOrder...)...)
			for _, n := range pl.Targets {
				how := "no way documented (spec.nodes[].power): the drill refuses"
				if pw := r.Node(n).Power; pw != nil && pw.Command != "" {
					how = "power on here: sh -c " + shellQuote(pw.Command)
				} else if pw != nil && pw.Manual {
					how = "a person is asked to power it on"
				}
				pl.Revert = append(pl.Revert, Step{n, how + "; wait until it answers SSH"})
			}
			pl.Inject = []Step{
				{u.Node, "sh -c " + shellQuote(r.ServiceCommands(topology.ServiceUPS, u.Node).Stop) + " (upsmon forces the shutdown)"},
				{u.Node, fmt.Sprintf("upsmon shuts the rack down in %d stages, then itself, within %s", len(u.ShutdownOrder), u.BatteryBudget.Duration)},
			}
			break
		}
		for i, stage := range u.ShutdownOrder {
			pl.Targets = append(pl.Targets, stage...)
			pl.Revert = append(pl.Revert, Step{strings.Join(stage, ", "), fmt.Sprintf("%s (stage %d)", powerOn(p), i+1)})
		}
		pl.Inject = []Step{
			{u.Node, fmt.Sprintf("NUT %s: ups.status OL -> OB -> OB LB", u.Driver)},
			{u.Node, fmt.Sprintf("upsmon shuts the rack down in %d stages, then itself, within %s", len(u.ShutdownOrder), u.BatteryBudget.Duration)},
		}
		pl.Revert = append([]Step{{u.Node, powerOn(p) + " (power returns: UPS master first)"}}, pl.Revert...)
	}
	return pl, nil
}

func hardKill(topology.ProviderName, *topology.Rack) string { return "docker kill (hard power loss)" }

func powerOn(p topology.ProviderName) string {
	if p == topology.ProviderSSH {
		return "power on (spec.nodes[].power: its command, or a person asked to), wait until it answers SSH"
	}
	return "docker start"
}
