package conform

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"

	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/topology"
)

// rackNodes lists the Kubernetes nodes by name.
func rackNodes(ctx context.Context, t *Target) (map[string]*corev1.Node, error) {
	list, err := t.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	out := map[string]*corev1.Node{}
	for i := range list.Items {
		out[list.Items[i].Name] = &list.Items[i]
	}
	return out, nil
}

func runningPods(ctx context.Context, t *Target) ([]corev1.Pod, error) {
	list, err := t.Kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.Status.Phase == corev1.PodRunning || p.Status.Phase == corev1.PodPending {
			out = append(out, p)
		}
	}
	return out, nil
}

// nodesAndPods reads both, for the checks that set pods against their nodes.
func nodesAndPods(ctx context.Context, t *Target) (map[string]*corev1.Node, []corev1.Pod, error) {
	nodes, err := rackNodes(ctx, t)
	if err != nil {
		return nil, nil, err
	}
	pods, err := runningPods(ctx, t)
	return nodes, pods, err
}

// untolerated is a taint of n that keeps pod off it (NoSchedule, NoExecute).
func untolerated(n *corev1.Node, pod *corev1.Pod) (corev1.Taint, bool) {
	return corev1helpers.FindMatchingUntoleratedTaint(n.Spec.Taints, pod.Spec.Tolerations, func(t *corev1.Taint) bool {
		return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
	})
}

// mirror pods are the kubelet's static pods: they are not scheduled.
func mirror(p *corev1.Pod) bool { _, ok := p.Annotations[corev1.MirrorPodAnnotationKey]; return ok }

// kubeNodes are the topology's nodes that run Kubernetes.
func kubeNodes(r *topology.Rack) []*topology.Node {
	return append(r.NodesWithRole(topology.RoleServer), r.NodesWithRole(topology.RoleWorker)...)
}

func schedulingChecks() []Check {
	return []Check{{
		Name: "documented taints and labels are on the documented nodes", Family: "scheduling", Field: "spec.nodes[].taints, spec.nodes[].labels",
		Run: func(ctx context.Context, t *Target) (string, error) {
			nodes, err := rackNodes(ctx, t)
			if err != nil {
				return "", err
			}
			var p problems
			checked := 0
			for _, tn := range kubeNodes(t.Rack) {
				n, ok := nodes[tn.Name]
				if !ok {
					p.add(nodeField(t.Rack, tn.Name), "no Kubernetes node of that name")
					continue
				}
				for i, want := range tn.Taints {
					checked++
					f := fmt.Sprintf("%s.taints[%d]", nodeField(t.Rack, tn.Name), i)
					if !slices.ContainsFunc(n.Spec.Taints, func(got corev1.Taint) bool {
						return got.Key == want.Key && got.Value == want.Value && string(got.Effect) == want.Effect
					}) {
						p.add(f, "documented %s=%s:%s, node %s has taints [%s]", want.Key, want.Value, want.Effect, tn.Name, taintList(n.Spec.Taints))
					}
				}
				for _, k := range slices.Sorted(maps.Keys(tn.Labels)) {
					checked++
					if got, ok := n.Labels[k]; !ok || got != tn.Labels[k] {
						p.add(nodeField(t.Rack, tn.Name)+".labels."+k, "documented %q, node %s has %q (present: %t)", tn.Labels[k], tn.Name, got, ok)
					}
				}
			}
			return fmt.Sprintf("%s and labels checked", plural(checked, "documented taint", "documented taints")), p.err()
		},
	}, {
		Name: "no pod runs on a tainted node without tolerating its taints", Family: "scheduling", Field: "spec.nodes[].taints",
		Run: func(ctx context.Context, t *Target) (string, error) {
			nodes, pods, err := nodesAndPods(ctx, t)
			if err != nil {
				return "", err
			}
			var p problems
			for i := range pods {
				pod := &pods[i]
				n, ok := nodes[pod.Spec.NodeName]
				if !ok || mirror(pod) {
					continue
				}
				if taint, bad := untolerated(n, pod); bad {
					p.add(nodeField(t.Rack, n.Name)+".taints", "pod %s/%s runs on %s without tolerating its taint %s", pod.Namespace, pod.Name, n.Name, taint.ToString())
				}
			}
			return fmt.Sprintf("%s checked against their nodes' taints", plural(len(pods), "pod", "pods")), p.err()
		},
	}}
}

func taintList(ts []corev1.Taint) string {
	var out []string
	for _, t := range ts {
		out = append(out, t.ToString())
	}
	return strings.Join(out, ", ")
}

func architectureChecks() []Check {
	return []Check{{
		Name: "every node's architecture is the documented one", Family: "architecture", Field: "spec.nodes[].arch",
		Run: func(ctx context.Context, t *Target) (string, error) {
			nodes, err := rackNodes(ctx, t)
			if err != nil {
				return "", err
			}
			var p problems
			archs := map[string][]string{}
			for _, tn := range kubeNodes(t.Rack) {
				n, ok := nodes[tn.Name]
				if !ok {
					p.add(nodeField(t.Rack, tn.Name), "no Kubernetes node of that name")
					continue
				}
				got := n.Status.NodeInfo.Architecture
				archs[got] = append(archs[got], tn.Name)
				if got != tn.Arch {
					p.add(nodeField(t.Rack, tn.Name)+".arch", "documented %s, node %s runs %s", tn.Arch, tn.Name, got)
				}
			}
			var parts []string
			for _, a := range slices.Sorted(maps.Keys(archs)) {
				parts = append(parts, a+": "+strings.Join(archs[a], ", "))
			}
			return strings.Join(parts, "; "), p.err()
		},
	}, {
		Name: "every image of every running pod has a variant for each node it may be scheduled on", Family: "architecture", Field: "spec.nodes[].arch",
		Run: checkImagePlatforms,
	}}
}

// checkImagePlatforms compares, per image, the platforms the nodes' image
// stores know for it with the architectures of the nodes its pod may be
// scheduled on (node selector, required node affinity, taints).
func checkImagePlatforms(ctx context.Context, t *Target) (string, error) {
	nodes, pods, err := nodesAndPods(ctx, t)
	if err != nil {
		return "", err
	}
	platforms := map[string]map[string]bool{} // image ref -> architectures
	for _, tn := range kubeNodes(t.Rack) {
		n := t.node(tn.Name)
		if n == nil {
			continue
		}
		imgs, err := nodeImages(ctx, n)
		if err != nil {
			return "", fmt.Errorf("images on %s: %w", tn.Name, err)
		}
		for ref, archs := range imgs {
			if platforms[ref] == nil {
				platforms[ref] = map[string]bool{}
			}
			for _, a := range archs {
				platforms[ref][a] = true
			}
		}
	}
	// image -> architectures it may need, and one pod that needs it.
	need := map[string]map[string]string{}
	for i := range pods {
		pod := &pods[i]
		if mirror(pod) {
			continue
		}
		aff := nodeaffinity.GetRequiredNodeAffinity(pod)
		for _, n := range nodes {
			if ok, _ := aff.Match(n); !ok {
				continue
			}
			if _, bad := untolerated(n, pod); bad {
				continue
			}
			for _, c := range append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...) {
				ref := normalizeRef(c.Image)
				if need[ref] == nil {
					need[ref] = map[string]string{}
				}
				if _, ok := need[ref][n.Status.NodeInfo.Architecture]; !ok {
					need[ref][n.Status.NodeInfo.Architecture] = pod.Namespace + "/" + pod.Name + " on " + n.Name
				}
			}
		}
	}
	var p problems
	var unknown []string
	for _, ref := range slices.Sorted(maps.Keys(need)) {
		have, ok := platforms[ref]
		if !ok {
			unknown = append(unknown, ref)
			continue
		}
		for _, arch := range slices.Sorted(maps.Keys(need[ref])) {
			if !have[arch] {
				p.add("spec.nodes[].arch", "image %s has variants for [%s], but %s may run it on %s", ref,
					strings.Join(slices.Sorted(maps.Keys(have)), ", "), need[ref][arch], arch)
			}
		}
	}
	obs := fmt.Sprintf("%s checked", plural(len(need)-len(unknown), "image", "images"))
	if len(unknown) > 0 {
		obs += fmt.Sprintf("; not in any node's image store (platforms unknown): %s", strings.Join(unknown, ", "))
	}
	return obs, p.err()
}

// normalizeRef writes an image reference as containerd stores it.
func normalizeRef(ref string) string {
	name, tag := ref, ""
	if i := strings.Index(ref, "@"); i >= 0 {
		name, tag = ref[:i], ref[i:]
	} else if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		name, tag = ref[:i], ref[i:]
	} else {
		tag = ":latest"
	}
	first, _, hasSlash := strings.Cut(name, "/")
	switch {
	case !hasSlash:
		name = "docker.io/library/" + name
	case !strings.ContainsAny(first, ".:") && first != "localhost":
		name = "docker.io/" + name
	}
	return name + tag
}

// nodeImages lists the images containerd holds on n, with their platforms'
// architectures (`ctr images ls`, or K3s's `k3s ctr`).
func nodeImages(ctx context.Context, n exec.Cmder) (map[string][]string, error) {
	out, err := exec.Output(n.Command(ctx, "sh", "-c", "if command -v ctr >/dev/null; then ctr -n k8s.io images ls; else k3s ctr -n k8s.io images ls; fi"))
	if err != nil {
		return nil, err
	}
	imgs := map[string][]string{}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, line := range lines[min(1, len(lines)):] {
		f := strings.Fields(line)
		// REF TYPE DIGEST SIZE(number unit) PLATFORMS LABELS
		if len(f) < 6 || strings.HasPrefix(f[0], "sha256:") {
			continue
		}
		var archs []string
		for _, pl := range strings.Split(f[5], ",") {
			parts := strings.Split(pl, "/")
			if len(parts) >= 2 {
				archs = append(archs, parts[1])
			}
		}
		imgs[f[0]] = archs
	}
	return imgs, nil
}

func healthChecks() []Check {
	return []Check{{
		Name: "no pod is crash-looping and no node reports pressure", Family: "health", Field: "spec.nodes",
		Run: func(ctx context.Context, t *Target) (string, error) {
			nodes, pods, err := nodesAndPods(ctx, t)
			if err != nil {
				return "", err
			}
			var p problems
			for _, name := range slices.Sorted(maps.Keys(nodes)) {
				for _, c := range []corev1.NodeConditionType{corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure} {
					if condition(nodes[name], c) == corev1.ConditionTrue {
						p.add(nodeField(t.Rack, name), "node %s reports %s", name, c)
					}
				}
			}
			for _, pod := range pods {
				for _, cs := range append(slices.Clone(pod.Status.InitContainerStatuses), pod.Status.ContainerStatuses...) {
					if w := cs.State.Waiting; w != nil && (w.Reason == "CrashLoopBackOff" || w.Reason == "ImagePullBackOff" || w.Reason == "ErrImagePull") {
						p.add("spec.nodes", "pod %s/%s container %s is in %s (%d restarts) on %s", pod.Namespace, pod.Name, cs.Name, w.Reason, cs.RestartCount, pod.Spec.NodeName)
					}
				}
			}
			return fmt.Sprintf("%d nodes, %d pods", len(nodes), len(pods)), p.err()
		},
	}, {
		Name: "CoreDNS resolves Services, with its replicas where the apps run (on distinct workers when several run them)", Family: "health", Field: "spec.nodes[roles=worker]",
		Run: func(ctx context.Context, t *Target) (string, error) {
			pods, err := t.Kube.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=kube-dns"})
			if err != nil {
				return "", fmt.Errorf("list CoreDNS pods: %w", err)
			}
			var p problems
			where := map[string]int{}
			for _, pod := range pods.Items {
				where[pod.Spec.NodeName]++
			}
			// The workers that run the apps: a storage node tainted
			// storage=only is not one. With a single one, DNS belongs there
			// with the apps it serves, every replica of it.
			workers := map[string]bool{}
			for _, w := range t.Rack.AppNodes() {
				if w.HasRole(topology.RoleWorker) {
					workers[w.Name] = true
				}
			}
			var placed []string
			for _, n := range slices.Sorted(maps.Keys(where)) {
				placed = append(placed, fmt.Sprintf("%s×%d", n, where[n]))
				if where[n] > 1 && len(workers) != 1 {
					p.add("spec.nodes[roles=worker]", "%d CoreDNS replicas on %s: losing it loses them all", where[n], n)
				}
				// A replica on a server is a DNS outage when that server dies,
				// until the node grace takes its endpoint out (seen in the
				// server-kill drills).
				if len(workers) >= 1 && !workers[n] {
					p.add(nodeField(t.Rack, n), "a CoreDNS replica runs on %s, not on a worker: a server's loss breaks in-cluster DNS until the node grace period", n)
				}
			}
			if len(pods.Items) == 0 {
				p.add("spec.nodes", "no CoreDNS pod (k8s-app=kube-dns)")
			}
			if r := sample(ctx, t, "apps"); !r.OK {
				p.add("spec.nodes", "a pod cannot call a Service by its DNS name: %v", r.Err)
			}
			return "CoreDNS on " + strings.Join(placed, ", ") + "; a pod resolves and calls a Service by name", p.err()
		},
	}}
}
