package agent

import (
	"context"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// PathHeal is the heal check, run by the agent inside the cluster.
const PathHeal = "/check/heal"

// HealLabel and HealName select the heal Deployment's pods.
const (
	HealLabel = "rackdrill.dev/probe"
	HealName  = "rackdrill-heal"
)

// Heal checks that the control loops act: it deletes a pod of the heal
// Deployment in namespace and waits until the ReplicaSet controller has
// created a replacement, the scheduler has placed it and its kubelet reports
// it Ready. That needs the API, etcd, the controller-manager, the scheduler
// and a kubelet: the "self-healing stops" of seed 001 §2.
//
// The agent runs it inside the cluster, through the kubernetes Service (the
// API servers' own addresses, not the VIP), so that a heal verdict under
// cp-lb-lost says whether the cluster still heals, not whether the harness's
// path to it is up. Each request gets a client of its own from newClient (a
// new connection, which kube-proxy sends to any API server) and a short
// limit, and is tried again until the check's deadline: a connection that
// happened to go to a dead API server, still in the Service's endpoints
// until its lease lapses, is not the cluster failing to heal.
func Heal(ctx context.Context, newClient func() (kubernetes.Interface, error), namespace string) (string, error) {
	start := time.Now()
	sel := metav1.ListOptions{LabelSelector: HealLabel + "=" + HealName}
	var pods *corev1.PodList
	if err := retry(ctx, newClient, func(ctx context.Context, cs kubernetes.Interface) (err error) {
		pods, err = cs.CoreV1().Pods(namespace).List(ctx, sel)
		return err
	}); err != nil {
		return "", fmt.Errorf("list heal pods: %w", err)
	}
	var ready []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && podReady(&p) {
			ready = append(ready, p)
		}
	}
	if len(ready) == 0 {
		return "", fmt.Errorf("no Ready pod of Deployment %s/%s to delete", namespace, HealName)
	}
	sort.Slice(ready, func(i, j int) bool { return ready[i].CreationTimestamp.Before(&ready[j].CreationTimestamp) })
	victim := ready[0]
	zero := int64(0)
	if err := retry(ctx, newClient, func(ctx context.Context, cs kubernetes.Interface) error {
		err := cs.CoreV1().Pods(namespace).Delete(ctx, victim.Name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &victim.UID}})
		if apierrors.IsNotFound(err) {
			return nil // an earlier try that timed out deleted it
		}
		return err
	}); err != nil {
		return "", fmt.Errorf("delete pod %s: %w", victim.Name, err)
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
			return "", fmt.Errorf("deleted pod %s; no replacement Ready within %s", victim.Name, time.Since(start).Round(time.Millisecond))
		case <-tick.C:
		}
		cs, err := newClient()
		if err != nil {
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, requestLimit)
		pods, err := cs.CoreV1().Pods(namespace).List(lctx, sel)
		cancel()
		if err != nil {
			continue // the API may blip; the deadline decides
		}
		for _, p := range pods.Items {
			if !known[string(p.UID)] && p.DeletionTimestamp == nil && p.Spec.NodeName != "" && podReady(&p) {
				return fmt.Sprintf("pod %s replaced by %s on %s", victim.Name, p.Name, p.Spec.NodeName), nil
			}
		}
	}
}

// requestLimit bounds one request of the heal check: an API server answers
// a list of a few pods in milliseconds.
const requestLimit = 2 * time.Second

// retry runs call with a new client until it succeeds or ctx ends; its error
// is the last one.
func retry(ctx context.Context, newClient func() (kubernetes.Interface, error), call func(context.Context, kubernetes.Interface) error) error {
	var last error
	for {
		cs, err := newClient()
		if err == nil {
			rctx, cancel := context.WithTimeout(ctx, requestLimit)
			err = call(rctx, cs)
			cancel()
			if err == nil {
				return nil
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return last
		case <-time.After(200 * time.Millisecond):
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

// healWithin is how long the agent gives a heal check when the harness does
// not say (its ?within=): the harness's heal timeout less a margin to answer.
const healWithin = 25 * time.Second

func (h *Handler) heal(ctx context.Context, within string) Report {
	// The agent answers before the harness gives up on it, so that a heal
	// that did not happen is reported with its reason, not as a timeout.
	ctx, cancel := boundedBy(ctx, within, healWithin)
	defer cancel()
	if h.Kube == nil {
		return h.fail(fmt.Errorf("no in-cluster API client (the agent runs outside a pod, or without its service account)"))
	}
	detail, err := Heal(ctx, h.Kube, h.Namespace)
	if err != nil {
		return h.fail(err)
	}
	return Report{OK: true, Detail: detail + " (seen from " + h.Node + ", through the kubernetes Service)"}
}
