package probe_test

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"rackdrill.dev/rackdrill/harness/probe"
)

// The workloads are checked for what breaks silently on a cluster: selectors that
// do not select their own pods, a NodePort that forwards to other nodes' agents,
// agents that skip tainted nodes. Applying them to a real API server comes with
// the default lab.
func TestWorkloadsAreConsistent(t *testing.T) {
	objs := probe.Workloads(probe.WorkloadConfig{Namespace: "rackdrill-probes", Image: "rackdrill/agent:test",
		IngressHost: "demo.rackdrill.local", IngressClass: "traefik", StorageClass: "nas-1"})
	services := map[string]*corev1.Service{}
	pdbs := map[string]*policyv1.PodDisruptionBudget{}
	var podLabels = map[string]map[string]string{}
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.Deployment:
			checkSelector(t, o.Name, o.Spec.Selector, o.Spec.Template.Labels)
			podLabels[o.Name] = o.Spec.Template.Labels
		case *appsv1.DaemonSet:
			checkSelector(t, o.Name, o.Spec.Selector, o.Spec.Template.Labels)
			podLabels[o.Name] = o.Spec.Template.Labels
			if len(o.Spec.Template.Spec.Tolerations) != 1 || o.Spec.Template.Spec.Tolerations[0].Operator != corev1.TolerationOpExists {
				t.Errorf("agent DaemonSet must tolerate every taint: %+v", o.Spec.Template.Spec.Tolerations)
			}
		case *corev1.Service:
			services[o.Name] = o
		case *policyv1.PodDisruptionBudget:
			pdbs[o.Name] = o
		}
		if m, ok := o.(metav1.Object); ok && m.GetNamespace() != "rackdrill-probes" && m.GetName() != "rackdrill-probes" {
			t.Errorf("%s outside the probes' namespace: %q", m.GetName(), m.GetNamespace())
		}
	}
	for name, svc := range services {
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(podLabels[name])) {
			t.Errorf("Service %s selects no pod of %s", name, name)
		}
	}
	// A drain moves the demo app one replica at a time: its budget selects
	// its pods and keeps fewer than all of them (else no drain could end).
	pdb := pdbs[probe.DemoName]
	if pdb == nil || pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Fatalf("the demo app has no PodDisruptionBudget keeping one replica: %+v", pdb)
	}
	checkSelector(t, "PodDisruptionBudget "+pdb.Name, pdb.Spec.Selector, podLabels[probe.DemoName])
	a := services[probe.AgentName]
	if a.Spec.Type != corev1.ServiceTypeNodePort || a.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal ||
		a.Spec.Ports[0].NodePort != probe.AgentNodePort {
		t.Errorf("agent Service: %+v", a.Spec)
	}
}

func checkSelector(t *testing.T, name string, sel *metav1.LabelSelector, podLabels map[string]string) {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || !s.Matches(labels.Set(podLabels)) {
		t.Errorf("%s: selector %v does not match its pods' labels %v", name, sel, podLabels)
	}
}
