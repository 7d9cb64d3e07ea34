package fault

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-logr/logr"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/exec"
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

// Described is a fault that says, step by step, what it runs: the plan
// printed by `rackdrill plan`, confirmed on a real rack, and the dead-man
// timers are this very description of the fault that is then injected.
type Described interface {
	Steps() (inject, revert []Step)
}

// Plan says what a fault would do to a rack, without touching it: `rackdrill
// plan` prints it and the ssh provider asks for confirmation of it. Its steps
// are those of the fault Build makes for the run (see Action).
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
	// Loses is what the fault takes from the rack's machines: the derived
	// matrix (harness/promises) reads from it which other promises a
	// machine's loss brings with it.
	Loses Loss `json:"loses,omitzero"`
}

// Loss is what a fault takes from the rack's machines: machines taken whole,
// with every role they hold (killed, stopped, powered off), or the services
// of some roles only, the machine staying up. A fault on cluster objects
// (MetalLB, the tunnel client) takes no machine.
type Loss struct {
	// Of are the candidate machines. Count of them are taken, chosen at
	// injection (the etcd leader's server first); every one when Count is 0.
	Of    []string `json:"of,omitempty"`
	Count int      `json:"count,omitempty"`
	// Whole: the machines go down whole, every role they hold with them.
	Whole bool `json:"whole,omitempty"`
	// Roles whose services stop when the machines stay up.
	Roles []topology.Role `json:"roles,omitempty"`
}

// whole says whether a fault on provider p takes its machines whole: the
// lab's and k3d's machines are containers, killed or stopped; on a real
// rack (ssh) a fault stops services and leaves the machine up.
func whole(p topology.ProviderName) bool { return p != topology.ProviderSSH }

// Binder gives a fault being built its machines and the rack's API. There
// are two: the plan's (PlanBinder: machines by name only, the ones chosen at
// injection as placeholders, no API) and the run's (the provider's machines,
// the etcd leader chosen from the rack's state, the rack's API).
type Binder interface {
	// Nodes returns the named machines.
	Nodes(ctx context.Context, names ...string) ([]cluster.Node, error)
	// Servers returns count servers, the one holding the etcd leader first,
	// then the next in topology order.
	Servers(ctx context.Context, count int) ([]cluster.Node, error)
	// Kube is a client of the rack's API; nil when planning.
	Kube() KubeClient
	// Nodes lister and logger for faults that look their machines up again
	// (the remote faults' heartbeat).
	Lister() cluster.NodeLister
	Log() logr.Logger
}

// Action is one fault of the matrix: on a rack and provider, whether it
// applies and what it targets (scope, from the topology alone), and the fault
// itself (build). PlanFor and Build both go through build, so that what the
// plan prints is what runs.
type Action struct {
	scope func(r *topology.Rack, p topology.ProviderName) Plan
	build func(ctx context.Context, b Binder, r *topology.Rack, p topology.ProviderName, pl Plan) (Recordable, error)
}

var actions = map[string]Action{}

// PlanFor describes fault name on rack r under provider p: its scope, and the
// steps of the fault built with placeholders for what is chosen at
// injection.
func PlanFor(name string, r *topology.Rack, p topology.ProviderName) (Plan, error) {
	a, ok := actions[name]
	if !ok {
		return Plan{}, fmt.Errorf("unknown fault %q (known: %s)", name, strings.Join(Names, ", "))
	}
	pl := a.scope(r, p)
	pl.Fault = name
	if !pl.Applicable {
		return pl, nil
	}
	f, err := a.build(context.Background(), PlanBinder(r), r, p, pl)
	if err != nil {
		return pl, fmt.Errorf("plan fault %s: %w", name, err)
	}
	pl.Inject, pl.Revert = f.(Described).Steps()
	return pl, nil
}

// Build makes fault name for the run, bound by b: the same builder as the
// plan's, with the run's machines and API.
func Build(ctx context.Context, name string, b Binder, r *topology.Rack, p topology.ProviderName) (Recordable, error) {
	a, ok := actions[name]
	if !ok {
		return nil, fmt.Errorf("unknown fault %q (known: %s)", name, strings.Join(Names, ", "))
	}
	pl := a.scope(r, p)
	pl.Fault = name
	if !pl.Applicable {
		return nil, fmt.Errorf("fault %s does not apply to rack %s: %s", name, r.Metadata.Name, pl.Why)
	}
	return a.build(ctx, b, r, p, pl)
}

// placeholders of the servers chosen at injection, in order.
var serverPlaceholders = []string{"etcd leader", "next server"}

// planBinder binds a fault for its plan: every machine is a name that runs
// nothing.
type planBinder struct{ r *topology.Rack }

// PlanBinder is the Binder of plans: nothing is read from or run on the rack.
func PlanBinder(r *topology.Rack) Binder { return planBinder{r} }

func (b planBinder) Nodes(_ context.Context, names ...string) ([]cluster.Node, error) {
	var out []cluster.Node
	for _, n := range names {
		if b.r.Node(n) == nil && n != "serverlb" {
			return nil, fmt.Errorf("node %s is not in the topology", n)
		}
		out = append(out, plannedNode(n))
	}
	return out, nil
}

func (b planBinder) Servers(_ context.Context, count int) ([]cluster.Node, error) {
	var out []cluster.Node
	for _, n := range serverPlaceholders[:count] {
		out = append(out, plannedNode(n))
	}
	return out, nil
}

func (planBinder) Kube() KubeClient           { return nil }
func (planBinder) Lister() cluster.NodeLister { return nil }
func (planBinder) Log() logr.Logger           { return logr.Discard() }

// errPlanned is what a planned fault's machines say if anything tries to
// run on them.
var errPlanned = errors.New("a planned fault cannot be injected")

// plannedNode is a machine of a plan: a name.
type plannedNode string

func (n plannedNode) Name() string { return string(n) }

func init() {
	servers := func(r *topology.Rack) []string {
		var out []string
		for _, n := range r.NodesWithRole(topology.RoleServer) {
			out = append(out, n.Name)
		}
		return out
	}
	serverKill := func(count int) Action {
		return Action{
			scope: func(r *topology.Rack, p topology.ProviderName) Plan {
				s := servers(r)
				switch {
				case count == 1 && len(s) < 2:
					return Plan{Why: fmt.Sprintf("the rack has %d server: killing it is not a failover", len(s))}
				case len(s) < count:
					return Plan{Why: fmt.Sprintf("the rack has %d server", len(s))}
				}
				pl := Plan{Applicable: true, Targets: s,
					Choice:      "the server holding the etcd leader (so that an election happens)",
					LosesQuorum: len(s)-count < topology.Quorum(len(s)),
					Loses:       Loss{Of: s, Count: count, Whole: whole(p), Roles: []topology.Role{topology.RoleServer}}}
				if count == 2 {
					pl.Choice += ", and the next server in topology order"
				}
				return pl
			},
			build: func(ctx context.Context, b Binder, r *topology.Rack, p topology.ProviderName, pl Plan) (Recordable, error) {
				targets, err := b.Servers(ctx, count)
				if err != nil {
					return nil, err
				}
				if !pl.Loses.Whole {
					var steps []RemoteStep
					for _, t := range targets {
						st := ServiceSteps(r, topology.ServiceServer, pl.Targets[0])[0]
						if r.Node(t.Name()) != nil {
							st = ServiceSteps(r, topology.ServiceServer, t.Name())[0]
						}
						st.Node = t.Name()
						steps = append(steps, st)
					}
					return NewRemote(pl.Fault, b.Lister(), b.Log(), steps...), nil
				}
				return NewNodePower(pl.Fault, PowerKill, targets...), nil
			},
		}
	}
	actions["server-kill-1"] = serverKill(1)
	actions["server-kill-2"] = serverKill(2)

	actions["lb-master-lost"] = Action{
		scope: func(r *topology.Rack, p topology.ProviderName) Plan {
			ka := r.Spec.ControlPlane.Keepalived
			if p == topology.ProviderK3d {
				return Plan{Why: "no keepalived VIP in this rack (k3d's load balancer has no VRRP)"}
			}
			if ka == nil {
				return Plan{Why: "the rack has no keepalived VIP (spec.controlPlane.keepalived is empty)"}
			}
			master := ka.Master()
			// A machine that holds other roles keeps them: only its VRRP dies.
			return Plan{Applicable: true, Targets: []string{master},
				Loses: Loss{Of: []string{master}, Whole: whole(p) && len(r.Node(master).Roles) == 1, Roles: []topology.Role{topology.RoleLoadBalancer}}}
		},
		build: func(ctx context.Context, b Binder, r *topology.Rack, p topology.ProviderName, pl Plan) (Recordable, error) {
			master := pl.Targets[0]
			if p == topology.ProviderSSH {
				return NewRemote(pl.Fault, b.Lister(), b.Log(), ServiceSteps(r, topology.ServiceKeepalived, master)...), nil
			}
			ns, err := b.Nodes(ctx, master)
			if err != nil {
				return nil, err
			}
			if !pl.Loses.Whole {
				return NewExec(pl.Fault, ns[0], []string{"systemctl", "stop", "keepalived"}, []string{"systemctl", "start", "keepalived"}), nil
			}
			return NewNodePower(pl.Fault, PowerKill, ns...).WithNote("the keepalived MASTER dies"), nil
		},
	}

	lbNodes := func(r *topology.Rack) []string {
		cp := r.Spec.ControlPlane
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
		return lbs
	}
	actions["cp-lb-lost"] = Action{
		scope: func(r *topology.Rack, p topology.ProviderName) Plan {
			if p == topology.ProviderK3d {
				return Plan{Applicable: true, Targets: []string{"serverlb"}} // k3d's load balancer container
			}
			lbs := lbNodes(r)
			if len(lbs) == 0 {
				return Plan{Why: "the rack has no control-plane load balancer (spec.controlPlane.keepalived and haproxy are empty)"}
			}
			// A machine whose only role is load balancing is stopped whole,
			// one that holds other roles keeps them: either way, what is
			// lost is the load balancing.
			return Plan{Applicable: true, Targets: lbs, Loses: Loss{Of: lbs, Roles: []topology.Role{topology.RoleLoadBalancer}}}
		},
		build: func(ctx context.Context, b Binder, r *topology.Rack, p topology.ProviderName, pl Plan) (Recordable, error) {
			if p == topology.ProviderK3d {
				ns, err := b.Nodes(ctx, pl.Targets...)
				if err != nil {
					return nil, err
				}
				return NewNodePower(pl.Fault, PowerStop, ns...).WithNote("k3d's API load balancer"), nil
			}
			cp := r.Spec.ControlPlane
			isKeepalived := func(n string) bool {
				return cp.Keepalived != nil && slices.ContainsFunc(cp.Keepalived.Members, func(m topology.KeepalivedMember) bool { return m.Node == n })
			}
			isHAProxy := func(n string) bool { return cp.HAProxy != nil && slices.Contains(cp.HAProxy.Nodes, n) }
			if p == topology.ProviderSSH {
				var steps []RemoteStep
				for _, n := range pl.Targets {
					if isKeepalived(n) {
						steps = append(steps, ServiceSteps(r, topology.ServiceKeepalived, n)...)
					}
					if isHAProxy(n) {
						steps = append(steps, ServiceSteps(r, topology.ServiceHAProxy, n)...)
					}
				}
				return NewRemote(pl.Fault, b.Lister(), b.Log(), steps...), nil
			}
			var parts []Recordable
			var whole []cluster.Node
			for _, n := range pl.Targets {
				ns, err := b.Nodes(ctx, n)
				if err != nil {
					return nil, err
				}
				if len(r.Node(n).Roles) == 1 {
					whole = append(whole, ns[0])
					continue
				}
				// A machine that holds other roles keeps them: only its load
				// balancing stops.
				var stop, start []string
				if isKeepalived(n) {
					stop, start = append(stop, "keepalived"), append(start, "keepalived")
				}
				if isHAProxy(n) {
					stop, start = append(stop, "haproxy"), append([]string{"haproxy"}, start...)
				}
				parts = append(parts, NewExec(pl.Fault, ns[0], append([]string{"systemctl", "stop"}, stop...), append([]string{"systemctl", "start"}, start...)))
			}
			if len(whole) > 0 {
				parts = append([]Recordable{NewNodePower(pl.Fault, PowerStop, whole...)}, parts...)
			}
			if len(parts) == 1 {
				return parts[0], nil
			}
			return NewAll(pl.Fault, parts...), nil
		},
	}

	actions["metallb-dropped"] = Action{
		scope: func(r *topology.Rack, p topology.ProviderName) Plan {
			m := r.Spec.MetalLB
			if m == nil {
				return Plan{Why: "the rack has no MetalLB (spec.metallb is empty)"}
			}
			return Plan{Applicable: true, Targets: []string{m.Namespace + "/controller", m.Namespace + "/speaker"}}
		},
		build: func(ctx context.Context, b Binder, r *topology.Rack, p topology.ProviderName, pl Plan) (Recordable, error) {
			ns := r.Spec.MetalLB.Namespace
			ctrl, err := NewScale(ctx, pl.Fault, b.Kube(), ns, "controller")
			if err != nil {
				return nil, err
			}
			speakers, err := NewUnschedule(ctx, pl.Fault, b.Kube(), ns, "speaker")
			if err != nil {
				return nil, err
			}
			return guarded(pl.Fault, b, r, p, ctrl, speakers), nil
		},
	}

	actions["tunnel-client-cut"] = Action{
		scope: func(r *topology.Rack, p topology.ProviderName) Plan {
			t := r.Spec.Tunnel
			if t == nil {
				return Plan{Why: "the rack has no tunnel (spec.tunnel is empty)"}
			}
			return Plan{Applicable: true, Targets: []string{t.Client.Namespace + "/" + t.Client.Deployment}}
		},
		build: func(ctx context.Context, b Binder, r *topology.Rack, p topology.ProviderName, pl Plan) (Recordable, error) {
			c := r.Spec.Tunnel.Client
			sc, err := NewScale(ctx, pl.Fault, b.Kube(), c.Namespace, c.Deployment)
			if err != nil {
				return nil, err
			}
			return guarded(pl.Fault, b, r, p, sc), nil
		},
	}

	// A machine of its own (the VPS, the NAS) dies, or on a real rack its
	// service stops.
	machineLoss := func(svc topology.Service, role topology.Role, why func(r *topology.Rack) string, node func(r *topology.Rack) string, note string) Action {
		return Action{
			scope: func(r *topology.Rack, p topology.ProviderName) Plan {
				if w := why(r); w != "" {
					return Plan{Why: w}
				}
				n := node(r)
				return Plan{Applicable: true, Targets: []string{n}, Loses: Loss{Of: []string{n}, Whole: whole(p), Roles: []topology.Role{role}}}
			},
			build: func(ctx context.Context, b Binder, r *topology.Rack, p topology.ProviderName, pl Plan) (Recordable, error) {
				if !pl.Loses.Whole {
					return NewRemote(pl.Fault, b.Lister(), b.Log(), ServiceSteps(r, svc, pl.Targets[0])...), nil
				}
				ns, err := b.Nodes(ctx, pl.Targets...)
				if err != nil {
					return nil, err
				}
				return NewNodePower(pl.Fault, PowerStop, ns...).WithNote(note), nil
			},
		}
	}
	actions["tunnel-server-lost"] = machineLoss(topology.ServiceTunnelServer, topology.RoleVPS,
		func(r *topology.Rack) string {
			if r.Spec.Tunnel == nil {
				return "the rack has no tunnel (spec.tunnel is empty)"
			}
			return ""
		},
		func(r *topology.Rack) string { return r.Spec.Tunnel.Server.Node }, "the VPS dies")
	actions["nfs-lost"] = machineLoss(topology.ServiceNFS, topology.RoleNAS,
		func(r *topology.Rack) string {
			if s := r.Spec.Storage; s == nil || s.NFS == nil {
				return "the rack has no NFS server (spec.storage.nfs is empty)"
			}
			return ""
		},
		func(r *topology.Rack) string { return r.Spec.Storage.NFS.Node }, "the NAS dies")

	actions["worker-lost"] = Action{
		scope: func(r *topology.Rack, p topology.ProviderName) Plan {
			// A failover needs somewhere for the apps to go: two nodes
			// that run them, one of them a worker to lose. A worker tainted
			// for one purpose (a storage node) runs no apps.
			apps := r.AppNodes()
			i := slices.IndexFunc(apps, func(n *topology.Node) bool { return n.HasRole(topology.RoleWorker) })
			if len(apps) < 2 || i < 0 {
				why := fmt.Sprintf("the rack has %d node(s) that run the apps: losing one is not a failover", len(apps))
				if i < 0 {
					why = "no worker runs the apps: there is no worker to lose"
				}
				tainted := 0
				for _, n := range r.NodesWithRole(topology.RoleWorker) {
					if !r.RunsApps(n) {
						tainted++
					}
				}
				if tainted > 0 {
					why += fmt.Sprintf(" (%d tainted worker(s) run only what tolerates their taint)", tainted)
				}
				return Plan{Why: why}
			}
			w := apps[i].Name
			return Plan{Applicable: true, Targets: []string{w}, Loses: Loss{Of: []string{w}, Whole: whole(p), Roles: []topology.Role{topology.RoleWorker}}}
		},
		build: func(ctx context.Context, b Binder, r *topology.Rack, p topology.ProviderName, pl Plan) (Recordable, error) {
			if !pl.Loses.Whole {
				return NewRemote(pl.Fault, b.Lister(), b.Log(), ServiceSteps(r, topology.ServiceWorker, pl.Targets[0])...), nil
			}
			ns, err := b.Nodes(ctx, pl.Targets...)
			if err != nil {
				return nil, err
			}
			return NewNodePower(pl.Fault, PowerKill, ns...), nil
		},
	}

	actions["ups-power-loss"] = Action{
		scope: func(r *topology.Rack, p topology.ProviderName) Plan {
			u := r.Spec.UPS
			if u == nil {
				return Plan{Why: "the rack has no UPS (spec.ups is empty)"}
			}
			if p == topology.ProviderK3d {
				return Plan{Why: "k3d has no machines to power off"}
			}
			return Plan{Applicable: true, Power: true, Targets: append([]string{u.Node}, slices.Concat(u.ShutdownOrder...)...)}
		},
		build: func(ctx context.Context, b Binder, r *topology.Rack, p topology.ProviderName, pl Plan) (Recordable, error) {
			u := r.Spec.UPS
			master, err := b.Nodes(ctx, u.Node)
			if err != nil {
				return nil, err
			}
			var stages [][]cluster.Node
			for _, st := range u.ShutdownOrder {
				ns, err := b.Nodes(ctx, st...)
				if err != nil {
					return nil, err
				}
				stages = append(stages, ns)
			}
			f := NewUPSPowerLoss(pl.Fault, master[0], u.Name, stages, u.BatteryBudget.Duration)
			if p == topology.ProviderSSH {
				// A real UPS is not played with: upsmon forces the shutdown,
				// and each machine comes back by its spec.nodes[].power.
				f.WithForcedShutdown(r.ServiceCommands(topology.ServiceUPS, u.Node).Stop)
				if !u.NUT() {
					f.WithCommands()
				}
				f.powerOn = map[string]string{}
				for _, n := range pl.Targets {
					how := "no way documented (spec.nodes[].power): the drill refuses"
					if pw := r.Node(n).Power; pw != nil && pw.Command != "" {
						how = "power on here: sh -c " + exec.Quote(pw.Command)
					} else if pw != nil && pw.Manual {
						how = "a person is asked to power it on"
					}
					f.powerOn[n] = how + "; wait until it answers SSH"
				}
			}
			return f, nil
		},
	}
}

// shellQuote makes s one word for a POSIX shell, as the plan prints it.
