package probe_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"rackdrill.dev/rackdrill/harness/probe"
	"rackdrill.dev/rackdrill/harness/probe/agent"
)

func healPod(name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "rackdrill-probes", UID: k8stypes.UID("uid-" + name),
		Labels: map[string]string{agent.HealLabel: agent.HealName}, CreationTimestamp: metav1.Now()},
		Spec:   corev1.PodSpec{NodeName: "worker-1"},
		Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
}

// Issue 35, point 7: the heal probe reached the API through the VIP, so
// under cp-lb-lost and server-kill-2 it repeated the api cell. It is now
// asked of the agents (NodeIP:NodePort), which delete and watch a heal pod
// through the in-cluster API path: the harness's own path to the API plays
// no part.
func TestHealIsObservedFromInsideTheCluster(t *testing.T) {
	cs := kubefake.NewClientset(healPod("heal-a"), healPod("heal-b"))
	// The ReplicaSet controller, as the fake has none: a deleted heal pod
	// is replaced by a Ready one.
	replaced := 0
	cs.PrependReactor("delete", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		replaced++
		name := fmt.Sprintf("heal-r%d", replaced)
		go func() {
			time.Sleep(100 * time.Millisecond)
			_, _ = cs.CoreV1().Pods("rackdrill-probes").Create(context.Background(), healPod(name), metav1.CreateOptions{})
		}()
		return false, nil, nil
	})
	inCluster := true
	srv := httptest.NewServer(&agent.Handler{Node: "worker-2", Namespace: "rackdrill-probes", Kube: func() (kubernetes.Interface, error) {
		if !inCluster {
			return nil, errors.New("dial tcp 10.96.0.1:443: connect: connection refused")
		}
		return cs, nil
	}})
	defer srv.Close()
	heal := probe.NewHeal(probe.NewAgents([]string{strings.TrimPrefix(srv.URL, "http://")}), time.Second, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r := heal.Check(ctx)
	if !r.OK || !strings.Contains(r.Detail, "replaced by heal-r1") || !strings.Contains(r.Detail, "seen from worker-2, through the kubernetes Service") {
		t.Fatalf("heal through the agent: %+v", r)
	}
	// A connection that meets a dead API server (still in the kubernetes
	// Service's endpoints) is tried again on a new one: the cluster healed.
	calls := 0
	flaky := httptest.NewServer(&agent.Handler{Node: "worker-3", Namespace: "rackdrill-probes", Kube: func() (kubernetes.Interface, error) {
		calls++
		if calls%2 == 1 {
			return nil, errors.New("dial tcp 10.96.0.1:443: i/o timeout")
		}
		return cs, nil
	}})
	defer flaky.Close()
	if r := probe.NewHeal(probe.NewAgents([]string{strings.TrimPrefix(flaky.URL, "http://")}), time.Second, 5*time.Second).Check(ctx); !r.OK {
		t.Errorf("every other connection to a dead API server: %+v", r)
	}
	// The in-cluster path gone: the agent says so, from inside.
	inCluster = false
	if r := heal.Check(ctx); r.OK || !strings.Contains(r.Err.Error(), "agent on worker-2") || !strings.Contains(r.Err.Error(), "10.96.0.1") {
		t.Errorf("no in-cluster API: %+v", r)
	}
	// An agent without a service account has no heal check, and says so.
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	bare := httptest.NewServer(&agent.Handler{Node: "n"})
	defer bare.Close()
	if r := probe.NewHeal(probe.NewAgents([]string{strings.TrimPrefix(bare.URL, "http://")}), time.Second, time.Second).Check(ctx); r.OK ||
		!strings.Contains(r.Err.Error(), "no in-cluster API client") {
		t.Errorf("an agent without its client: %+v", r)
	}
}
