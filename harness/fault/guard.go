package fault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/go-logr/logr"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/topology"
)

// kubectlReverter is a fault on cluster objects that can say its revert as a
// kubectl command line (after kubectl and its kubeconfig, which the machine
// running it gives).
type kubectlReverter interface {
	Recordable
	kubectlRevert() string
	what() string
}

// APIGuard is the dead-man timer of faults made through the rack's API (the
// MetalLB controller scaled to 0, the tunnel client's replicas): on a real
// rack, every server gets a timer, armed before the faults go in and re-armed
// while rackdrill runs, that puts the objects back by itself with the
// server's own kubectl and admin kubeconfig when the harness is gone. The API
// faults revert themselves; the guard's revert only cancels the timers.
type APIGuard struct {
	name   string
	remote *Remote
	// What the timers restore, and the kubectl they run it with.
	What    string `json:"what"`
	Kubectl string `json:"kubectl"`
}

var _ Recordable = (*APIGuard)(nil)

// ServerKubectl is the kubectl a server of distribution d runs as root, with
// its admin kubeconfig.
func ServerKubectl(d topology.Distribution) string {
	if d == topology.DistributionK3s {
		return "k3s kubectl --kubeconfig " + d.AdminKubeconfig()
	}
	return "kubectl --kubeconfig " + d.AdminKubeconfig()
}

// NewAPIGuard guards parts with a timer on each of servers that runs their
// reverts through kubectl.
func NewAPIGuard(name string, nodes cluster.NodeLister, log logr.Logger, r *topology.Rack, servers []string, parts ...kubectlReverter) *APIGuard {
	k := ServerKubectl(r.Spec.Kubernetes.Distribution)
	var what []string
	for _, p := range parts {
		what = append(what, p.what())
	}
	// One step per fault on each server: the timer runs them last first,
	// each even when another failed, each tried for a minute (the API may be
	// slow to answer on a rack in trouble).
	var steps []RemoteStep
	for _, s := range servers {
		for _, p := range parts {
			steps = append(steps, RemoteStep{Node: s, Revert: retried(k + " " + p.kubectlRevert()),
				DeadMan: r.DeadMan(s), Timer: r.DeadManTimer(s)})
		}
	}
	return &APIGuard{name: name, remote: NewRemote(name, nodes, log, steps...), What: strings.Join(what, " and "), Kubectl: k}
}

// retried runs cmd up to six times, ten seconds apart, until it succeeds.
func retried(cmd string) string {
	return "n=0; until " + cmd + "; do n=$((n+1)); [ $n -lt 6 ] || exit 1; sleep 10; done"
}

func (g *APIGuard) Name() string { return g.name }

// Inject arms every server's timer and keeps them armed until Revert.
func (g *APIGuard) Inject(ctx context.Context) error { return g.remote.Inject(ctx) }

// Revert cancels the timers: the faults it guards revert themselves.
func (g *APIGuard) Revert(ctx context.Context) error { return g.remote.cancel(ctx) }

// Steps implements Described.
func (g *APIGuard) Steps() (inject, revert []Step) {
	for _, n := range machines(g.remote.Cmds) {
		how := fmt.Sprintf("systemd-run --on-active=%s", deadMan(g.remote.Cmds, n))
		if timer(g.remote.Cmds, n) == topology.TimerShell {
			how = fmt.Sprintf("a detached shell timer, setsid sleep %s", deadMan(g.remote.Cmds, n))
		}
		inject = append(inject, Step{n, fmt.Sprintf("dead-man timer (%s, re-armed while rackdrill runs) that restores %s by itself, with %s on this server", how, g.What, g.Kubectl)})
		revert = append(revert, Step{n, "cancel the dead-man timer"})
	}
	return inject, revert
}

type apiGuardRecord struct {
	What    string  `json:"what"`
	Kubectl string  `json:"kubectl"`
	Remote  *Remote `json:"remote"`
}

// Record implements Recordable.
func (g *APIGuard) Record() (string, any) {
	return "api-guard", apiGuardRecord{What: g.What, Kubectl: g.Kubectl, Remote: g.remote}
}

// kubectlRevert implements kubectlReverter.
func (f *Scale) kubectlRevert() string {
	return fmt.Sprintf("-n %s scale deployment %s --replicas=%d", exec.Quote(f.Namespace), exec.Quote(f.Object), f.Replicas)
}

func (f *Scale) what() string {
	return fmt.Sprintf("Deployment %s/%s's replicas", f.Namespace, f.Object)
}

// kubectlRevert implements kubectlReverter: the same merge patch as Revert.
func (f *Unschedule) kubectlRevert() string {
	body, _ := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"nodeSelector": f.revertSelector()}}}})
	return fmt.Sprintf("-n %s patch daemonset %s --type=merge -p %s", exec.Quote(f.Namespace), exec.Quote(f.Object), exec.Quote(string(body)))
}

func (f *Unschedule) what() string {
	return fmt.Sprintf("DaemonSet %s/%s's nodeSelector", f.Namespace, f.Object)
}

// guarded puts an API guard on servers before parts on a real rack (provider
// ssh), whose harness may vanish; the lab's and k3d's faults are reverted by
// rackdrill recover.
func guarded(name string, b Binder, r *topology.Rack, p topology.ProviderName, parts ...kubectlReverter) Recordable {
	var out []Recordable
	if p == topology.ProviderSSH {
		var servers []string
		for _, n := range r.NodesWithRole(topology.RoleServer) {
			servers = append(servers, n.Name)
		}
		out = append(out, NewAPIGuard(name, b.Lister(), b.Log(), r, servers, parts...))
	}
	for _, p := range parts {
		out = append(out, p)
	}
	if len(out) == 1 {
		return out[0]
	}
	return NewAll(name, out...)
}

func init() {
	Register("api-guard", func(ctx context.Context, env Env, name string, raw json.RawMessage) (Fault, error) {
		rec := apiGuardRecord{Remote: NewRemote(name, env.Nodes, env.Log)}
		if err := json.Unmarshal(raw, &rec); err != nil {
			return nil, fmt.Errorf("fault %s: %w", name, err)
		}
		if rec.Remote.ID == "" || len(rec.Remote.Cmds) == 0 {
			return nil, fmt.Errorf("fault %s: ledger entry has no guard", name)
		}
		if env.Nodes == nil {
			return nil, errors.New("fault " + name + ": no provider to reach its servers")
		}
		return &APIGuard{name: name, remote: rec.Remote, What: rec.What, Kubectl: rec.Kubectl}, nil
	})
}
