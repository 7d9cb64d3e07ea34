package fault

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
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
//
// An effect is read three times: before the fault (Before: the target
// answers, else "no answer" afterwards would prove nothing: a wrong address
// or a harness with no route to the rack reads "closed"), after the
// injection (Check, until seen), and through the window (Check again every
// EffectRecheck, when Held): a fault found undone mid-window (a controller
// restored it, a dead-man timer fired early) fails the drill.
type Effect struct {
	// What the effect is, in words.
	What string `json:"what"`
	// Within is how soon after the injection it must be seen.
	Within time.Duration `json:"within"`
	// Check looks once: nil when the effect is seen, else what is seen
	// instead.
	Check func(ctx context.Context) error `json:"-"`
	// Before looks once, before the fault: nil when the target shows the
	// state the fault is to change (the port answers, the pods run), else
	// what it shows instead. nil: nothing to look at before.
	Before func(ctx context.Context) error `json:"-"`
	// Held says the effect lasts until the revert and is checked again
	// through the window; a fault that runs its course (the power drill's
	// halts) is not.
	Held bool `json:"held,omitempty"`
}

// EffectResult is how an effect check went, as run.json records it.
type EffectResult = runrecord.Effect

// EffectLook is one check of an effect through the window.
type EffectLook = runrecord.EffectLook

// BeforeFault checks that the target answers before the fault, a few times
// over a few seconds (a probe's blip is not the target's absence); its
// error says what was seen instead, and that the effect could not be
// evidence.
func (e Effect) BeforeFault(ctx context.Context) (string, error) {
	if e.Before == nil {
		return "", nil
	}
	var last error
	for try := 0; try < 3; try++ {
		cctx, cancel := context.WithTimeout(ctx, EffectCheckTimeout)
		last = e.Before(cctx)
		cancel()
		if last == nil {
			return "answered before the fault", nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(EffectPoll):
		}
	}
	return "", fmt.Errorf("before the fault, the target of %q did not answer (%v): its silence afterwards would prove nothing, so the fault is not injected", e.What, last)
}

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

// Watch is Wait, then, once the effect is seen and when it is Held, a check
// every EffectRecheck until stop is closed (the revert): each look is
// recorded, and the first that finds the effect gone marks the fault undone,
// with what came back and when.
func (e Effect) Watch(ctx context.Context, injected time.Time, stop <-chan struct{}) EffectResult {
	return e.Keep(ctx, injected, e.Wait(ctx, injected), stop)
}

// Keep is Watch's second half, from Wait's result res.
func (e Effect) Keep(ctx context.Context, injected time.Time, res EffectResult, stop <-chan struct{}) EffectResult {
	if !res.Seen || !e.Held {
		return res
	}
	t := time.NewTicker(EffectRecheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return res
		case <-stop:
			return res
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, EffectCheckTimeout)
		err := e.Check(cctx)
		cancel()
		select {
		case <-stop:
			return res // the revert began while looking: not evidence
		default:
		}
		look := EffectLook{At: time.Now(), Seen: err == nil}
		if err != nil {
			look.Detail = err.Error()
			if res.UndoneAfter == nil && ctx.Err() == nil {
				after := look.At.Sub(injected)
				res.Undone, res.UndoneAfter = err.Error(), &after
			}
		}
		res.Looks = append(res.Looks, look)
	}
}

// EffectRecheck is how often a held effect is checked again through the
// window.
var EffectRecheck = 5 * time.Second // a variable so that tests can look more often

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
			Within: 15 * time.Second, Check: portsClosed(addrs...), Before: portsOpen(addrs...), Held: true}, nil
	case "lb-master-lost":
		master := r.Spec.ControlPlane.Keepalived.Master()
		vip := r.Spec.ControlPlane.Endpoint.Host
		holder := func(ctx context.Context) (string, error) {
			nodes, err := listed(ctx, b)
			if err != nil {
				return "", err
			}
			return rackstate.VIPHolder(ctx, nodes, vip)
		}
		return Effect{What: fmt.Sprintf("the API VIP %s moved from %s to a BACKUP", vip, master), Within: 15 * time.Second, Held: true,
			Before: func(ctx context.Context) error {
				h, err := holder(ctx)
				if err == nil && h != master {
					err = fmt.Errorf("%s does not hold %s (held by %q): the MASTER is not where the topology says", master, vip, h)
				}
				return err
			},
			Check: func(ctx context.Context) error {
				h, err := holder(ctx)
				switch {
				case err != nil:
					return err
				case h == "":
					return fmt.Errorf("no machine holds %s", vip)
				case h == master:
					return fmt.Errorf("%s still holds %s", master, vip)
				}
				return nil
			}}, nil
	case "cp-lb-lost":
		ep := net.JoinHostPort(r.Spec.ControlPlane.Endpoint.Host, strconv.Itoa(r.Spec.ControlPlane.Endpoint.Port))
		return Effect{What: "the API endpoint " + ep + " no longer accepts connections", Within: 15 * time.Second, Check: portsClosed(ep),
			Before: portsOpen(ep), Held: true}, nil
	case "metallb-dropped":
		ns := r.Spec.MetalLB.Namespace
		running := func(ctx context.Context) ([]string, error) {
			cs, err := b.Kube()(ctx)
			if err != nil {
				return nil, err
			}
			pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return nil, err
			}
			var names []string
			for _, p := range pods.Items {
				if p.Status.Phase == corev1.PodRunning || p.Status.Phase == corev1.PodPending {
					names = append(names, p.Name)
				}
			}
			return names, nil
		}
		return Effect{What: "no MetalLB controller or speaker runs in " + ns, Within: time.Minute, Held: true,
			Before: func(ctx context.Context) error {
				names, err := running(ctx)
				if err == nil && len(names) == 0 {
					err = fmt.Errorf("no pod runs in %s: MetalLB is not there to drop", ns)
				}
				return err
			},
			Check: func(ctx context.Context) error {
				names, err := running(ctx)
				if err == nil && len(names) > 0 {
					err = fmt.Errorf("still running: %s", strings.Join(names, ", "))
				}
				return err
			}}, nil
	case "tunnel-client-cut":
		c := r.Spec.Tunnel.Client
		ready := func(ctx context.Context) (int32, error) {
			cs, err := b.Kube()(ctx)
			if err != nil {
				return 0, err
			}
			d, err := cs.AppsV1().Deployments(c.Namespace).Get(ctx, c.Deployment, metav1.GetOptions{})
			if err != nil {
				return 0, err
			}
			return d.Status.ReadyReplicas, nil
		}
		return Effect{What: "no pod of " + c.Namespace + "/" + c.Deployment + " is ready", Within: 30 * time.Second, Held: true,
			Before: func(ctx context.Context) error {
				n, err := ready(ctx)
				if err == nil && n == 0 {
					err = fmt.Errorf("no pod of %s/%s is ready: the tunnel client is not there to cut", c.Namespace, c.Deployment)
				}
				return err
			},
			Check: func(ctx context.Context) error {
				n, err := ready(ctx)
				if err == nil && n > 0 {
					err = fmt.Errorf("%d pod(s) ready again", n)
				}
				return err
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
			Check: portsClosed(eps...), Before: portsOpen(eps...), Held: true}, nil
	case "nfs-lost":
		addr := r.NFSAddress()
		ports := []string{net.JoinHostPort(addr, "2049"), net.JoinHostPort(addr, "111")}
		return Effect{What: "the NFS server " + addr + " refuses NFS (:2049) and the portmapper (:111)", Within: 15 * time.Second,
			Check: portsClosed(ports...), Before: portsOpen(ports...), Held: true}, nil
	case "worker-lost":
		w := targetsOf(f)[0]
		addr := r.Node(w).Address
		// ready says whether the node is Ready, as the controller-manager
		// marked it.
		ready := func(ctx context.Context) (bool, error) {
			cs, err := b.Kube()(ctx)
			if err != nil {
				return false, err
			}
			n, err := cs.CoreV1().Nodes().Get(ctx, w, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		}
		kubelet := net.JoinHostPort(addr, "10250")
		return Effect{What: "the kubelet of " + w + " (:10250) no longer answers and the node is NotReady", Within: 75 * time.Second, Held: true,
			Before: func(ctx context.Context) error {
				if err := portsOpen(kubelet)(ctx); err != nil {
					return err
				}
				if ok, err := ready(ctx); err != nil || !ok {
					return cmp.Or(err, fmt.Errorf("node %s is not Ready before the fault", w))
				}
				return nil
			},
			Check: func(ctx context.Context) error {
				if err := portsClosed(kubelet)(ctx); err != nil {
					return err
				}
				if ok, err := ready(ctx); err != nil || ok {
					return cmp.Or(err, fmt.Errorf("node %s is still Ready (the node grace has not ended)", w))
				}
				return nil
			}}, nil
	case "ups-power-loss":
		// The UPS itself says it: on battery (OB) or forced shutdown (FSD),
		// as upsd reports it to upsmon on the master; before the fault it
		// must report online. A UPS that is not NUT's (spec.ups.commands)
		// cannot be read: its effect is its forced-shutdown command
		// succeeding, which the injection itself checks.
		ups, ok := f.(*UPSPowerLoss)
		if !ok || ups.params.Commands {
			what := "the forced shutdown began: " + r.ServiceCommands(topology.ServiceUPS, r.Spec.UPS.Node).Stop + " succeeded on " + r.Spec.UPS.Node
			return Effect{What: what, Within: 90*time.Second + time.Second, Check: func(context.Context) error { return nil }}, nil
		}
		return Effect{What: "the UPS " + ups.params.UPS + " reports on battery (OB) or a forced shutdown (FSD), as upsmon on " + ups.params.Master + " reads it",
			Within: 90*time.Second + time.Second, Before: ups.online, Check: ups.onBatteryOrFSD}, nil
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

// portsOpen checks that every address accepts a TCP connection: the state a
// fault that closes them must be seen to change.
func portsOpen(addrs ...string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		var closed []string
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, a := range addrs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := net.Dialer{Timeout: 2 * time.Second}
				c, err := d.DialContext(ctx, "tcp", a)
				if err != nil {
					mu.Lock()
					closed = append(closed, fmt.Sprintf("%s (%v)", a, err))
					mu.Unlock()
					return
				}
				c.Close()
			}()
		}
		wg.Wait()
		if len(closed) > 0 {
			slices.Sort(closed)
			return fmt.Errorf("not accepting connections: %s", strings.Join(closed, ", "))
		}
		return nil
	}
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
