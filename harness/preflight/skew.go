package preflight

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Minor is a Kubernetes minor release: 1.34.
type Minor struct{ Major, Minor int }

func (m Minor) String() string { return fmt.Sprintf("v%d.%d", m.Major, m.Minor) }

var versionRE = regexp.MustCompile(`^v?(\d+)\.(\d+)(?:\.(\d+|x))?(?:[-+].*)?$`)

// ParseMinor reads v1.34, v1.34.x, v1.34.2 or 1.34.2+k3s1.
func ParseMinor(v string) (Minor, error) {
	m := versionRE.FindStringSubmatch(strings.TrimSpace(v))
	if m == nil {
		return Minor{}, fmt.Errorf("version %q: want vMAJOR.MINOR[.PATCH|.x]", v)
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return Minor{major, minor}, nil
}

// Versions are the versions of the running components, by node (or pod).
type Versions struct {
	APIServer         map[string]string `json:"apiServer"`
	ControllerManager map[string]string `json:"controllerManager"`
	Scheduler         map[string]string `json:"scheduler"`
	Kubelet           map[string]string `json:"kubelet"`
	KubeProxy         map[string]string `json:"kubeProxy"`
}

// ReadVersions reads the components' versions: kubelets from the nodes, the
// control plane and kube-proxy from their pods' images (kubeadm's static pods
// and DaemonSet), or from the API server itself where it runs as no pod (K3s).
func ReadVersions(ctx context.Context, cs kubernetes.Interface) (Versions, error) {
	v := Versions{APIServer: map[string]string{}, ControllerManager: map[string]string{}, Scheduler: map[string]string{},
		Kubelet: map[string]string{}, KubeProxy: map[string]string{}}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return v, fmt.Errorf("list nodes: %w", err)
	}
	for _, n := range nodes.Items {
		v.Kubelet[n.Name] = n.Status.NodeInfo.KubeletVersion
	}
	pods, err := cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
	if err != nil {
		return v, fmt.Errorf("list kube-system pods: %w", err)
	}
	for _, p := range pods.Items {
		into := map[string]map[string]string{"kube-apiserver": v.APIServer, "kube-controller-manager": v.ControllerManager,
			"kube-scheduler": v.Scheduler, "kube-proxy": v.KubeProxy}
		name := p.Labels["component"]
		if name == "" {
			name = p.Labels["k8s-app"]
		}
		m, ok := into[name]
		if !ok || len(p.Spec.Containers) == 0 {
			continue
		}
		img := p.Spec.Containers[0].Image
		if i := strings.LastIndex(img, ":"); i > strings.LastIndex(img, "/") {
			m[p.Spec.NodeName] = img[i+1:]
		}
	}
	if len(v.APIServer) == 0 {
		sv, err := cs.Discovery().ServerVersion()
		if err != nil {
			return v, fmt.Errorf("server version: %w", err)
		}
		v.APIServer["(API)"] = sv.GitVersion
	}
	return v, nil
}

// CheckSkew returns every way the running components and an upgrade to
// target break the Kubernetes version skew policy
// (kubernetes.io/releases/version-skew-policy): API servers within one minor
// of each other; the target at most one minor past the oldest API server and
// not older than the newest; controller-manager and scheduler not newer than
// the API server nor more than one minor older; kubelets and kube-proxy not
// newer than the API server, and not more than three minors older than the
// target once the control plane runs it.
func CheckSkew(v Versions, target Minor) []string {
	var out []string
	parse := func(what string, m map[string]string) map[string]Minor {
		res := map[string]Minor{}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			mv, err := ParseMinor(m[k])
			if err != nil {
				out = append(out, fmt.Sprintf("%s on %s: unreadable version %q", what, k, m[k]))
				continue
			}
			res[k] = mv
		}
		return res
	}
	api := parse("kube-apiserver", v.APIServer)
	if len(api) == 0 {
		return append(out, "no kube-apiserver version found")
	}
	oldest, newest := Minor{1 << 30, 1 << 30}, Minor{}
	for _, m := range api {
		if less(m, oldest) {
			oldest = m
		}
		if less(newest, m) {
			newest = m
		}
	}
	if target.Major != oldest.Major {
		out = append(out, fmt.Sprintf("target %s changes the major version of kube-apiserver %s", target, oldest))
	}
	if newest.Minor-oldest.Minor > 1 {
		out = append(out, fmt.Sprintf("kube-apiserver instances are %s to %s: more than one minor apart", oldest, newest))
	}
	if target.Minor > oldest.Minor+1 {
		out = append(out, fmt.Sprintf("target %s skips a minor: kube-apiserver %s must go to %s first", target, oldest, Minor{oldest.Major, oldest.Minor + 1}))
	}
	if less(target, newest) {
		out = append(out, fmt.Sprintf("target %s is older than kube-apiserver %s: downgrades are not supported", target, newest))
	}
	for what, m := range map[string]map[string]string{"kube-controller-manager": v.ControllerManager, "kube-scheduler": v.Scheduler} {
		for node, mv := range parse(what, m) {
			if less(newest, mv) {
				out = append(out, fmt.Sprintf("%s on %s is %s, newer than kube-apiserver %s", what, node, mv, newest))
			}
			if oldest.Minor-mv.Minor > 1 {
				out = append(out, fmt.Sprintf("%s on %s is %s, more than one minor older than kube-apiserver %s", what, node, mv, oldest))
			}
		}
	}
	for what, m := range map[string]map[string]string{"kubelet": v.Kubelet, "kube-proxy": v.KubeProxy} {
		for node, mv := range parse(what, m) {
			if less(oldest, mv) {
				out = append(out, fmt.Sprintf("%s on %s is %s, newer than kube-apiserver %s", what, node, mv, oldest))
			}
			if target.Minor-mv.Minor > 3 {
				out = append(out, fmt.Sprintf("%s on %s is %s, more than three minors older than the target %s: upgrade it first", what, node, mv, target))
			}
		}
	}
	slices.Sort(out)
	return out
}

func less(a, b Minor) bool { return a.Major < b.Major || (a.Major == b.Major && a.Minor < b.Minor) }
