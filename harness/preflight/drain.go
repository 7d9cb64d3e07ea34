package preflight

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/drain"
)

// NodeDrain is what `kubectl drain` would do to one node.
type NodeDrain struct {
	Node string `json:"node"`
	// Drainable: every pod to move may be evicted now.
	Drainable bool `json:"drainable"`
	// Evict are the pods eviction would move; Ignored the DaemonSet and
	// static pods that stay.
	Evict []string `json:"evict"`
	// Blocked says, per pod, why drain would stop: no controller, local
	// (emptyDir) data, or a PodDisruptionBudget that allows no disruption now.
	Blocked []string `json:"blocked,omitempty"`
	Warning string   `json:"warning,omitempty"`
}

// DrainReport asks, for every node, what drain would evict and what would
// block it, with drain's own rules (kubectl's drain package: DaemonSet pods
// ignored, no --force, no --delete-emptydir-data) and every eviction tried
// with dryRun, so that PodDisruptionBudgets answer as they would in a real
// drain and nothing moves.
func DrainReport(ctx context.Context, cs kubernetes.Interface) ([]NodeDrain, error) {
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	h := &drain.Helper{Ctx: ctx, Client: cs, IgnoreAllDaemonSets: true, GracePeriodSeconds: -1,
		DryRunStrategy: cmdutil.DryRunServer, Out: io.Discard, ErrOut: io.Discard}
	var out []NodeDrain
	for _, n := range nodes.Items {
		d := NodeDrain{Node: n.Name}
		list, errs := h.GetPodsForDeletion(n.Name)
		if list == nil {
			return nil, fmt.Errorf("pods of node %s: %w", n.Name, errs[0])
		}
		for _, e := range errs {
			// kubectl words it "cannot delete cannot delete Pods that ...".
			d.Blocked = append(d.Blocked, strings.Replace(e.Error(), "cannot delete cannot delete", "cannot delete", 1))
		}
		d.Warning = list.Warnings()
		for _, p := range list.Pods() {
			d.Evict = append(d.Evict, p.Namespace+"/"+p.Name)
			if err := evictDryRun(ctx, cs, p); err != nil {
				d.Blocked = append(d.Blocked, fmt.Sprintf("%s/%s: %v", p.Namespace, p.Name, err))
			}
		}
		d.Drainable = len(d.Blocked) == 0
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b NodeDrain) int { return strings.Compare(a.Node, b.Node) })
	return out, nil
}

// evictDryRun asks for the eviction of p without carrying it out: the API
// server answers 429 when a PodDisruptionBudget forbids it now.
func evictDryRun(ctx context.Context, cs kubernetes.Interface, p corev1.Pod) error {
	h := &drain.Helper{Ctx: ctx, Client: cs, GracePeriodSeconds: -1, DryRunStrategy: cmdutil.DryRunServer}
	err := h.EvictPod(p, policyV1)
	switch {
	case err == nil:
		return nil
	case apierrors.IsTooManyRequests(err):
		return fmt.Errorf("a PodDisruptionBudget allows no eviction now: %w", err)
	case apierrors.IsNotFound(err):
		return nil // gone since the list
	}
	return fmt.Errorf("eviction (dry run): %w", err)
}

var policyV1 = policyv1.SchemeGroupVersion
