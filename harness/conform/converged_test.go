package conform

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"rackdrill.dev/rackdrill/harness/probe"
	"rackdrill.dev/rackdrill/harness/topology"
)

// answers is a probe that always answers: these tests are about what the
// checks compare, not about the paths (the lab's conformance run samples those).
type answers string

func (a answers) Name() string                       { return string(a) }
func (a answers) Check(context.Context) probe.Result { return probe.Result{OK: true} }

func check(t *testing.T, name string) Check {
	t.Helper()
	for _, c := range Checks() {
		if strings.HasPrefix(c.Name, name) {
			return c
		}
	}
	t.Fatalf("no check %q", name)
	return Check{}
}

// convergedRack is seed 000's shape as the converged lab builds it: two
// servers holding the VIP, the ingress IP the VIP, a storage node tainted
// storage=only, one worker.
func convergedRack(t *testing.T) *topology.Rack {
	t.Helper()
	r, _, err := topology.Load("../../kind-configs/lab-converged.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func readyNode(name string, cp bool) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
	if cp {
		n.Labels["node-role.kubernetes.io/control-plane"] = ""
	}
	return n
}

func dnsPod(name, node string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-system", Labels: map[string]string{"k8s-app": "kube-dns"}},
		Spec: corev1.PodSpec{NodeName: node}}
}

// Two servers are the rack's documented shape: every one Ready conforms, the
// even count is reported; a documented server that is not Ready still fails.
func TestEvenServerCountConformsWhenDocumented(t *testing.T) {
	r := convergedRack(t)
	c := check(t, "every documented control-plane node is a Ready server")
	kube := fake.NewClientset(readyNode("server-1", true), readyNode("server-2", true))
	got, err := c.Run(context.Background(), &Target{Rack: r, Kube: kube})
	if err != nil || !strings.Contains(got, "2 of 2 servers Ready; 2 servers, an even count") {
		t.Errorf("got %q, %v", got, err)
	}
	down := readyNode("server-2", true)
	down.Status.Conditions[0].Status = corev1.ConditionFalse
	if _, err := c.Run(context.Background(), &Target{Rack: r, Kube: fake.NewClientset(readyNode("server-1", true), down)}); err == nil || !strings.Contains(err.Error(), "not Ready") {
		t.Errorf("server-2 not Ready: %v", err)
	}
}

// With one worker that runs the apps (storage-1 is tainted storage=only),
// CoreDNS belongs there, both replicas; on a server it is still refused.
func TestCoreDNSWhereTheAppsRun(t *testing.T) {
	r := convergedRack(t)
	c := check(t, "CoreDNS resolves Services")
	probes := map[string]probe.Probe{"apps": answers("apps")}
	kube := fake.NewClientset(dnsPod("coredns-a", "worker-1"), dnsPod("coredns-b", "worker-1"))
	if got, err := c.Run(context.Background(), &Target{Rack: r, Kube: kube, Probes: probes}); err != nil {
		t.Errorf("both on the one app worker: %v", err)
	} else if !strings.Contains(got, "worker-1×2") {
		t.Errorf("got %q", got)
	}
	kube = fake.NewClientset(dnsPod("coredns-a", "worker-1"), dnsPod("coredns-b", "server-1"))
	if _, err := c.Run(context.Background(), &Target{Rack: r, Kube: kube, Probes: probes}); err == nil || !strings.Contains(err.Error(), "server-1") {
		t.Errorf("a replica on server-1: %v", err)
	}

	// The default lab's two workers: replicas together are refused.
	lab, _, err := topology.Load("../../kind-configs/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	kube = fake.NewClientset(dnsPod("coredns-a", "worker-1"), dnsPod("coredns-b", "worker-1"))
	if _, err := c.Run(context.Background(), &Target{Rack: lab, Kube: kube, Probes: probes}); err == nil || !strings.Contains(err.Error(), "2 CoreDNS replicas on worker-1") {
		t.Errorf("lab, both on worker-1: %v", err)
	}
}

// The ingress IP is the VIP: no Service holds it, and the check asks only
// that the ingress answers there from the LAN.
func TestIngressOnTheVIP(t *testing.T) {
	r := convergedRack(t)
	c := check(t, "the ingress Service")
	got, err := c.Run(context.Background(), &Target{Rack: r, Kube: fake.NewClientset(), Probes: map[string]probe.Probe{"lan": answers("lan")}})
	if err != nil || !strings.Contains(got, "172.29.30.10 is the API's VIP") {
		t.Errorf("got %q, %v", got, err)
	}
}
