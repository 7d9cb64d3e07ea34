package probe

import (
	"context"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Heal checks that the control loops act: it deletes a pod of the heal
// Deployment and times until the ReplicaSet controller has created a
// replacement, the scheduler has placed it and its kubelet reports it Ready.
// That needs the API, etcd, controller-manager, scheduler and a kubelet: the
// "self-healing stops" of seed 001 §2.
type Heal struct {
	client    kubernetes.Interface
	namespace string
	interval  time.Duration
	timeout   time.Duration
}

var _ Paced = (*Heal)(nil)

// NewHeal returns the heal probe acting on the heal Deployment in namespace.
// Each check may take up to timeout; checks start at most every interval.
func NewHeal(c kubernetes.Interface, namespace string, interval, timeout time.Duration) *Heal {
	return &Heal{client: c, namespace: namespace, interval: interval, timeout: timeout}
}

func (h *Heal) Name() string            { return "heal" }
func (h *Heal) Interval() time.Duration { return h.interval }
func (h *Heal) Timeout() time.Duration  { return h.timeout }

// Check implements Probe.
func (h *Heal) Check(ctx context.Context) Result {
	start := time.Now()
	fail := func(format string, args ...any) Result {
		return Result{Took: time.Since(start), Err: fmt.Errorf(format, args...)}
	}
	pods, err := h.client.CoreV1().Pods(h.namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelComponent + "=" + HealName})
	if err != nil {
		return fail("list heal pods: %v", err)
	}
	var ready []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && podReady(&p) {
			ready = append(ready, p)
		}
	}
	if len(ready) == 0 {
		return fail("no Ready pod of Deployment %s/%s to delete", h.namespace, HealName)
	}
	sort.Slice(ready, func(i, j int) bool { return ready[i].CreationTimestamp.Before(&ready[j].CreationTimestamp) })
	victim := ready[0]
	zero := int64(0)
	if err := h.client.CoreV1().Pods(h.namespace).Delete(ctx, victim.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &victim.UID}}); err != nil {
		return fail("delete pod %s: %v", victim.Name, err)
	}
	known := map[string]bool{}
	for _, p := range pods.Items {
		known[string(p.UID)] = true
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return fail("deleted pod %s; no replacement Ready within %s", victim.Name, time.Since(start).Round(time.Millisecond))
		case <-tick.C:
		}
		pods, err := h.client.CoreV1().Pods(h.namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelComponent + "=" + HealName})
		if err != nil {
			continue // the API may blip; the deadline decides
		}
		for _, p := range pods.Items {
			if !known[string(p.UID)] && p.DeletionTimestamp == nil && p.Spec.NodeName != "" && podReady(&p) {
				return Result{OK: true, Took: time.Since(start),
					Detail: fmt.Sprintf("pod %s replaced by %s on %s", victim.Name, p.Name, p.Spec.NodeName)}
			}
		}
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
