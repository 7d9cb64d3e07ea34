package fault

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/exec"
	rexec "rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/topology"
)

// opsLog is what the faults did to the machines and the API, in order, as
// "where|op" keys that a plan's steps are compared with.
type opsLog struct {
	mu  sync.Mutex
	ops []string
}

func (l *opsLog) add(where, op string) {
	l.mu.Lock()
	l.ops = append(l.ops, where+"|"+op)
	l.mu.Unlock()
}

func (l *opsLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.ops
	l.ops = nil
	return out
}

// opNode is a machine that runs nothing and logs what it was asked to do.
type opNode struct {
	name string
	log  *opsLog
}

func (n opNode) Command(ctx context.Context, name string, args ...string) rexec.Cmd {
	argv := append([]string{name}, args...)
	switch {
	case name == "systemd-run", name == "sh" && len(args) == 2 && strings.Contains(args[1], "nohup setsid"):
		n.log.add(n.name, "arm") // systemd-run's timer, or the shell timer of a machine without systemd
	case name == "sh" && len(args) == 2 && strings.Contains(args[1], "rackdrill-deadman"):
		n.log.add(n.name, "disarm")
	case name == "sh" && len(args) == 2 && args[0] == "-c":
		n.log.add(n.name, "sh -c "+exec.Quote(args[1]))
	default:
		n.log.add(n.name, strings.Join(argv, " "))
	}
	return rexec.Local{}.Command(ctx, "true")
}
func (n opNode) Name() string                          { return n.name }
func (n opNode) Roles() []topology.Role                { return nil }
func (n opNode) Addr() netip.Addr                      { return netip.Addr{} }
func (n opNode) Stop(context.Context) error            { n.log.add(n.name, "stop"); return nil }
func (n opNode) Start(context.Context) error           { n.log.add(n.name, "start"); return nil }
func (n opNode) Kill(context.Context) error            { n.log.add(n.name, "kill"); return nil }
func (n opNode) Running(context.Context) (bool, error) { return true, nil }

// testBinder is the run's binder over logging machines: the etcd leader is
// the second server, so that the plan's placeholders must be resolved.
type testBinder struct {
	nodes   []cluster.Node
	servers []cluster.Node
	kube    KubeClient
}

func (b testBinder) Nodes(_ context.Context, names ...string) ([]cluster.Node, error) {
	return cluster.ByName(b.nodes, names...)
}
func (b testBinder) Servers(_ context.Context, count int) ([]cluster.Node, error) {
	return b.servers[:count], nil
}
func (b testBinder) Kube() KubeClient { return b.kube }
func (b testBinder) Lister() cluster.NodeLister {
	return nodeList(b.nodes)
}
func (b testBinder) Log() logr.Logger { return logr.Discard() }

// key is a plan step as the op it stands for.
func key(s Step) string {
	a := s.Action
	op := a
	for prefix, o := range map[string]string{
		"dead-man timer": "arm", "cancel the dead-man timer": "disarm",
		"docker kill": "kill", "docker stop": "stop", "docker start": "start",
	} {
		if strings.HasPrefix(a, prefix) {
			op = o
		}
	}
	if f := strings.Fields(a); len(f) > 2 && (f[1] == "Deployment" || f[1] == "DaemonSet") {
		op = "patch " + f[2]
	}
	if strings.HasPrefix(a, "restore the previous nodeSelector of DaemonSet ") {
		op = "patch " + strings.TrimPrefix(a, "restore the previous nodeSelector of DaemonSet ")
	}
	return s.Where + "|" + op
}

func keys(steps []Step) []string {
	var out []string
	for _, s := range steps {
		out = append(out, key(s))
	}
	return out
}

// TestPlanIsWhatRuns walks every row of the matrix on every provider and
// every topology shipped (the lab's, k3d's, the seed racks'): the steps
// `rackdrill plan` prints (and a real rack confirms) are the steps of the
// fault the run builds, and injecting and reverting that fault does exactly
// those steps, in order, on those machines and objects. The first version
// described faults in three places that disagreed: for a load balancer that
// holds another role, the plan said `systemctl stop keepalived` while the run
// stopped the whole machine.
func TestPlanIsWhatRuns(t *testing.T) {
	defer func(d time.Duration) { PowerOnSettle = d }(PowerOnSettle)
	PowerOnSettle = 0 // these machines stay up
	topologies, _ := filepath.Glob("../../kind-configs/*.yaml")
	seeds, _ := filepath.Glob("../topology/testdata/valid-seed*.yaml")
	topologies = append(topologies, seeds...)
	if len(topologies) < 7 {
		t.Fatalf("topologies: %v", topologies)
	}
	checked := 0
	for _, path := range topologies {
		r, _, err := topology.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []topology.ProviderName{topology.ProviderContainers, topology.ProviderK3d, topology.ProviderSSH} {
			for _, name := range Names {
				t.Run(fmt.Sprintf("%s/%s/%s", filepath.Base(path), p, name), func(t *testing.T) {
					pl, err := PlanFor(name, r, p)
					if err != nil {
						t.Fatal(err)
					}
					if !pl.Applicable {
						if pl.Why == "" {
							t.Error("not applicable without a reason")
						}
						return
					}
					log := &opsLog{}
					b := newTestBinder(t, r, log)
					f, err := Build(context.Background(), name, b, r, p)
					if err != nil {
						t.Fatal(err)
					}
					// The plan's placeholders are the servers chosen at injection.
					resolve := func(steps []Step) []Step {
						out := slices.Clone(steps)
						for i := range out {
							if j := slices.Index(serverPlaceholders, out[i].Where); j >= 0 {
								out[i].Where = b.servers[j].Name()
							}
						}
						return out
					}
					planIn, planRe := resolve(pl.Inject), resolve(pl.Revert)
					runIn, runRe := f.(Described).Steps()
					if !slices.Equal(planIn, runIn) || !slices.Equal(planRe, runRe) {
						t.Fatalf("the plan differs from the run's fault:\nplan inject %q\nrun  inject %q\nplan revert %q\nrun  revert %q", planIn, runIn, planRe, runRe)
					}
					// Every fault that applies has its effect check.
					if e, err := EffectOf(f, b, r, p); err != nil || e.What == "" || e.Within <= 0 || e.Check == nil {
						t.Errorf("effect: %+v, %v", e, err)
					}
					if _, ok := f.(*UPSPowerLoss); ok {
						return // its injection waits for a UPS and machines halting: the lab drills it
					}
					if err := f.Inject(context.Background()); err != nil {
						t.Fatal(err)
					}
					if got := log.take(); !slices.Equal(got, keys(planIn)) {
						t.Errorf("injecting did\n  %s\nthe plan says\n  %s", strings.Join(got, "\n  "), strings.Join(keys(planIn), "\n  "))
					}
					if err := f.Revert(context.Background()); err != nil {
						t.Fatal(err)
					}
					if got := log.take(); !slices.Equal(got, keys(planRe)) {
						t.Errorf("reverting did\n  %s\nthe plan says\n  %s", strings.Join(got, "\n  "), strings.Join(keys(planRe), "\n  "))
					}
					checked++
				})
			}
		}
	}
	if checked < 40 {
		t.Errorf("only %d drills compared", checked)
	}
}

func newTestBinder(t *testing.T, r *topology.Rack, log *opsLog) testBinder {
	b := testBinder{}
	for _, n := range r.Spec.Nodes {
		b.nodes = append(b.nodes, opNode{n.Name, log})
	}
	b.nodes = append(b.nodes, opNode{"serverlb", log}) // k3d's load balancer container
	for _, n := range r.NodesWithRole(topology.RoleServer) {
		node, _ := cluster.ByName(b.nodes, n.Name)
		b.servers = append(b.servers, node[0])
	}
	if len(b.servers) > 1 {
		b.servers = append(b.servers[1:2], append(b.servers[:1:1], b.servers[2:]...)...)
	}
	one := int32(1)
	var objs []runtime.Object
	if m := r.Spec.MetalLB; m != nil {
		objs = append(objs, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: m.Namespace, Name: "controller"}, Spec: appsv1.DeploymentSpec{Replicas: &one}},
			&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: m.Namespace, Name: "speaker"}})
	}
	if tn := r.Spec.Tunnel; tn != nil {
		objs = append(objs, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: tn.Client.Namespace, Name: tn.Client.Deployment}, Spec: appsv1.DeploymentSpec{Replicas: &one}})
	}
	cs := kubefake.NewClientset(objs...)
	cs.PrependReactor("patch", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pa := a.(k8stesting.PatchAction)
		log.add("cluster", "patch "+pa.GetNamespace()+"/"+pa.GetName())
		return false, nil, nil
	})
	b.kube = func(context.Context) (kubernetes.Interface, error) { return cs, nil }
	return b
}
