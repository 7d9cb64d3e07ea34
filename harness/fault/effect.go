package fault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/poll"
	"rackdrill.dev/rackdrill/harness/rackstate"
	"rackdrill.dev/rackdrill/harness/runrecord"
	"rackdrill.dev/rackdrill/harness/topology"
)

// Effect is what a fault must be seen to do once injected, within a budget:
// the server's kubelet and etcd member stop answering, the VIP moves, the
// MetalLB pods go. A fault whose effect is not seen did not take effect: its
// drill is broken whatever the probes said (a deviation never excuses it),
// since cells judged against a fault that did nothing prove nothing.
type Effect struct {
	// What the effect is, in words.
	What string `json:"what"`
	// Within is how soon after the injection it must be seen.
	Within time.Duration `json:"within"`
	// Check looks once: nil when the effect is seen, else what is seen
	// instead.
	Check func(ctx context.Context) error `json:"-"`
}

// EffectResult is how an effect check went, as run.json records it.
type EffectResult = runrecord.Effect

// Wait checks the effect until it is seen or its budget ends, from injected.
func (e Effect) Wait(ctx context.Context, injected time.Time) EffectResult {
	res := EffectResult{What: e.What, Within: e.Within}
	_ = poll.Until(ctx, EffectPoll, time.Until(injected.Add(e.Within)), func() (bool, error) {
		cctx, cancel := context.WithTimeout(ctx, EffectCheckTimeout)
		err := e.Check(cctx)
		cancel()
		if err != nil {
			res.Detail = err.Error()
			return false, nil
		}
		if after := time.Since(injected); after > e.Within {
			// Seen, but late: the budget is the promise.
			res.Detail = fmt.Sprintf("seen only %s after the injection", after.Round(100*time.Millisecond))
		} else {
			res.Seen, res.After, res.Detail = true, after, ""
		}
		return true, nil
	})
	return res
}

// EffectPoll is how often an effect is looked for; EffectCheckTimeout bounds
// one look (a dial to a machine just killed must not hold the next one up).
const (
	EffectPoll         = 500 * time.Millisecond
	EffectCheckTimeout = 3 * time.Second
)

// EffectOf is the effect fault f (built by Build for the same rack and
// provider) must be seen to have.
func EffectOf(f Recordable, b Binder, r *topology.Rack, p topology.ProviderName) (Effect, error) {
	name := f.Name()
	switch name {
	case "server-kill-1", "server-kill-2":
		var addrs []string
		for _, n := range targetsOf(f) {
			node := r.Node(n)
			if node == nil {
				return Effect{}, fmt.Errorf("fault %s: %s is not in the topology", name, n)
			}
			addrs = append(addrs, net.JoinHostPort(node.Address, "10250"), net.JoinHostPort(node.Address, "2379"))
		}
		return Effect{What: "the kubelet (:10250) and etcd member (:2379) of " + strings.Join(targetsOf(f), ", ") + " no longer answer",
			Within: 15 * time.Second, Check: portsClosed(addrs...)}, nil
	case "lb-master-lost":
		master := r.Spec.ControlPlane.Keepalived.Master()
		vip := r.Spec.ControlPlane.Endpoint.Host
		return Effect{What: fmt.Sprintf("the API VIP %s moved from %s to a BACKUP", vip, master), Within: 15 * time.Second,
			Check: func(ctx context.Context) error {
				nodes, err := listed(ctx, b)
				if err != nil {
					return err
				}
				holder, err := rackstate.VIPHolder(ctx, nodes, vip)
				switch {
				case err != nil:
					return err
				case holder == "":
					return fmt.Errorf("no machine holds %s", vip)
				case holder == master:
					return fmt.Errorf("%s still holds %s", master, vip)
				}
				return nil
			}}, nil
	case "cp-lb-lost":
		ep := net.JoinHostPort(r.Spec.ControlPlane.Endpoint.Host, strconv.Itoa(r.Spec.ControlPlane.Endpoint.Port))
		return Effect{What: "the API endpoint " + ep + " no longer accepts connections", Within: 15 * time.Second, Check: portsClosed(ep)}, nil
	case "metallb-dropped":
		ns := r.Spec.MetalLB.Namespace
		return Effect{What: "no MetalLB controller or speaker runs in " + ns, Within: time.Minute,
			Check: func(ctx context.Context) error {
				cs, err := b.Kube()(ctx)
				if err != nil {
					return err
				}
				pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
				if err != nil {
					return err
				}
				var running []string
				for _, p := range pods.Items {
					if p.Status.Phase == corev1.PodRunning || p.Status.Phase == corev1.PodPending {
						running = append(running, p.Name)
					}
				}
				if len(running) > 0 {
					return fmt.Errorf("still running: %s", strings.Join(running, ", "))
				}
				return nil
			}}, nil
	case "tunnel-client-cut":
		c := r.Spec.Tunnel.Client
		return Effect{What: "no pod of " + c.Namespace + "/" + c.Deployment + " is ready", Within: 30 * time.Second,
			Check: func(ctx context.Context) error {
				cs, err := b.Kube()(ctx)
				if err != nil {
					return err
				}
				d, err := cs.AppsV1().Deployments(c.Namespace).Get(ctx, c.Deployment, metav1.GetOptions{})
				if err != nil {
					return err
				}
				if d.Status.ReadyReplicas > 0 {
					return fmt.Errorf("%d pod(s) still ready", d.Status.ReadyReplicas)
				}
				return nil
			}}, nil
	case "tunnel-server-lost":
		t := r.Spec.Tunnel
		addr := t.Server.PublicAddress
		if addr == "" {
			addr = r.Node(t.Server.Node).Address
		}
		var eps []string
		for _, port := range t.Ports {
			eps = append(eps, net.JoinHostPort(addr, strconv.Itoa(port.Public)))
		}
		return Effect{What: "the tunnel server's public ports (" + strings.Join(eps, ", ") + ") are closed", Within: 15 * time.Second,
			Check: portsClosed(eps...)}, nil
	case "nfs-lost":
		addr := r.NFSAddress()
		return Effect{What: "the NFS server " + addr + " refuses NFS (:2049) and the portmapper (:111)", Within: 15 * time.Second,
			Check: portsClosed(net.JoinHostPort(addr, "2049"), net.JoinHostPort(addr, "111"))}, nil
	case "worker-lost":
		w := targetsOf(f)[0]
		addr := r.Node(w).Address
		return Effect{What: "the kubelet of " + w + " (:10250) no longer answers and the node is NotReady", Within: 75 * time.Second,
			Check: func(ctx context.Context) error {
				if err := portsClosed(net.JoinHostPort(addr, "10250"))(ctx); err != nil {
					return err
				}
				cs, err := b.Kube()(ctx)
				if err != nil {
					return err
				}
				n, err := cs.CoreV1().Nodes().Get(ctx, w, metav1.GetOptions{})
				if err != nil {
					return err
				}
				for _, c := range n.Status.Conditions {
					if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
						return fmt.Errorf("node %s is still Ready (the node grace has not ended)", w)
					}
				}
				return nil
			}}, nil
	case "ups-power-loss":
		// The drill's injection itself waits for the UPS to report OB (30 s
		// at most), then upsmon's FSD after OB LB (60 s at most), and fails
		// when it does not: the effect is seen once Inject returned (7 s on
		// the lab). On a real rack, the forced shutdown is the effect: its
		// command succeeded when Inject returned.
		what := "the UPS reported on battery, then low battery, and upsmon forced the shutdown (the injection waits for each)"
		if p == topology.ProviderSSH {
			what = "the forced shutdown began: " + r.ServiceCommands(topology.ServiceUPS, r.Spec.UPS.Node).Stop + " succeeded on " + r.Spec.UPS.Node
		}
		return Effect{What: what, Within: 90*time.Second + time.Second, Check: func(context.Context) error { return nil }}, nil
	}
	return Effect{}, fmt.Errorf("fault %s has no effect check", name)
}

// TargetsOf are the machines a built fault takes away or acts on, in order.
func TargetsOf(f Recordable) []string { return targetsOf(f) }

// targetsOf are the machines a built fault acts on, in order.
func targetsOf(f Recordable) []string {
	var out []string
	switch f := f.(type) {
	case *NodePower:
		for _, n := range f.nodes {
			out = append(out, n.Name())
		}
	case *Remote:
		out = machines(f.Cmds)
	case *Exec:
		out = append(out, f.nodeName)
	}
	return out
}

func listed(ctx context.Context, b Binder) ([]cluster.Node, error) {
	if b.Lister() == nil {
		return nil, errors.New("no provider to list the machines")
	}
	return b.Lister().Nodes(ctx)
}

// portsClosed checks that no address accepts a TCP connection: refused, or no
// answer within a second (a machine that is off answers nothing). The
// addresses are dialled at once, so that a check of several dead machines
// takes a second, not a second each.
func portsClosed(addrs ...string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		accepted := make([]bool, len(addrs))
		var wg sync.WaitGroup
		for i, a := range addrs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := net.Dialer{Timeout: time.Second}
				if c, err := d.DialContext(ctx, "tcp", a); err == nil {
					c.Close()
					accepted[i] = true
				}
			}()
		}
		wg.Wait()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var open []string
		for i, a := range addrs {
			if accepted[i] {
				open = append(open, a)
			}
		}
		if len(open) > 0 {
			return fmt.Errorf("still accepting connections: %s", strings.Join(open, ", "))
		}
		return nil
	}
}
