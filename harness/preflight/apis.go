package preflight

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// removed are the built-in APIs Kubernetes stopped serving, by the release
// that removed them (kubernetes.io/docs/reference/using-api/deprecation-guide).
// APIs deprecated later are found from the API server's own list (the
// apiserver_requested_deprecated_apis metric) instead.
var removed = map[Minor][]schema.GroupVersionResource{
	{1, 22}: {
		{Group: "extensions", Version: "v1beta1", Resource: "ingresses"},
		{Group: "networking.k8s.io", Version: "v1beta1", Resource: "ingresses"},
		{Group: "networking.k8s.io", Version: "v1beta1", Resource: "ingressclasses"},
		{Group: "apiextensions.k8s.io", Version: "v1beta1", Resource: "customresourcedefinitions"},
		{Group: "admissionregistration.k8s.io", Version: "v1beta1", Resource: "mutatingwebhookconfigurations"},
		{Group: "admissionregistration.k8s.io", Version: "v1beta1", Resource: "validatingwebhookconfigurations"},
		{Group: "apiregistration.k8s.io", Version: "v1beta1", Resource: "apiservices"},
		{Group: "certificates.k8s.io", Version: "v1beta1", Resource: "certificatesigningrequests"},
		{Group: "coordination.k8s.io", Version: "v1beta1", Resource: "leases"},
		{Group: "rbac.authorization.k8s.io", Version: "v1beta1", Resource: "clusterroles"},
		{Group: "rbac.authorization.k8s.io", Version: "v1beta1", Resource: "clusterrolebindings"},
		{Group: "rbac.authorization.k8s.io", Version: "v1beta1", Resource: "roles"},
		{Group: "rbac.authorization.k8s.io", Version: "v1beta1", Resource: "rolebindings"},
		{Group: "scheduling.k8s.io", Version: "v1beta1", Resource: "priorityclasses"},
		{Group: "storage.k8s.io", Version: "v1beta1", Resource: "csidrivers"},
		{Group: "storage.k8s.io", Version: "v1beta1", Resource: "csinodes"},
		{Group: "storage.k8s.io", Version: "v1beta1", Resource: "storageclasses"},
		{Group: "storage.k8s.io", Version: "v1beta1", Resource: "volumeattachments"},
	},
	{1, 25}: {
		{Group: "batch", Version: "v1beta1", Resource: "cronjobs"},
		{Group: "discovery.k8s.io", Version: "v1beta1", Resource: "endpointslices"},
		{Group: "events.k8s.io", Version: "v1beta1", Resource: "events"},
		{Group: "autoscaling", Version: "v2beta1", Resource: "horizontalpodautoscalers"},
		{Group: "policy", Version: "v1beta1", Resource: "poddisruptionbudgets"},
		{Group: "policy", Version: "v1beta1", Resource: "podsecuritypolicies"},
		{Group: "node.k8s.io", Version: "v1beta1", Resource: "runtimeclasses"},
	},
	{1, 26}: {
		{Group: "flowcontrol.apiserver.k8s.io", Version: "v1beta1", Resource: "flowschemas"},
		{Group: "flowcontrol.apiserver.k8s.io", Version: "v1beta1", Resource: "prioritylevelconfigurations"},
		{Group: "autoscaling", Version: "v2beta2", Resource: "horizontalpodautoscalers"},
	},
	{1, 27}: {{Group: "storage.k8s.io", Version: "v1beta1", Resource: "csistoragecapacities"}},
	{1, 29}: {
		{Group: "flowcontrol.apiserver.k8s.io", Version: "v1beta2", Resource: "flowschemas"},
		{Group: "flowcontrol.apiserver.k8s.io", Version: "v1beta2", Resource: "prioritylevelconfigurations"},
	},
	{1, 32}: {
		{Group: "flowcontrol.apiserver.k8s.io", Version: "v1beta3", Resource: "flowschemas"},
		{Group: "flowcontrol.apiserver.k8s.io", Version: "v1beta3", Resource: "prioritylevelconfigurations"},
	},
}

// RemovedAPIUse is one use of an API the target no longer serves.
type RemovedAPIUse struct {
	API       string   `json:"api"`
	RemovedIn string   `json:"removedIn"`
	Objects   []string `json:"objects,omitempty"`
	// Requested: clients asked for it since the API server started (they
	// will break after the upgrade even if no object is stored through it).
	Requested bool `json:"requested,omitempty"`
}

var deprecatedMetric = regexp.MustCompile(`^apiserver_requested_deprecated_apis\{(.*)\} 1$`)

// RemovedAPIs lists what uses an API removed by the target release: objects
// served through such an API that the running API server still serves, and
// the deprecated APIs clients requested, as the API server's metrics report
// them with the release that removes them.
func RemovedAPIs(ctx context.Context, cs kubernetes.Interface, dyn dynamic.Interface, target Minor) ([]RemovedAPIUse, error) {
	uses := map[string]*RemovedAPIUse{}
	served, err := servedGroupVersions(cs.Discovery())
	if err != nil {
		return nil, err
	}
	for rel, gvrs := range removed {
		if less(target, rel) {
			continue
		}
		for _, gvr := range gvrs {
			if !served[gvr.GroupVersion().String()] {
				continue
			}
			list, err := dyn.Resource(gvr).Namespace("").List(ctx, metav1.ListOptions{})
			if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("list %s: %w", gvr, err)
			}
			u := &RemovedAPIUse{API: gvr.GroupVersion().String() + " " + gvr.Resource, RemovedIn: rel.String()}
			for _, o := range list.Items {
				u.Objects = append(u.Objects, strings.TrimPrefix(o.GetNamespace()+"/"+o.GetName(), "/"))
			}
			if len(u.Objects) > 0 {
				uses[u.API] = u
			}
		}
	}
	metrics, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("API server metrics: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(metrics))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := deprecatedMetric.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		labels := parseLabels(m[1])
		rel, err := ParseMinor(labels["removed_release"])
		if err != nil || less(target, rel) {
			continue
		}
		gv := labels["version"]
		if labels["group"] != "" {
			gv = labels["group"] + "/" + gv
		}
		api := gv + " " + labels["resource"]
		if uses[api] == nil {
			uses[api] = &RemovedAPIUse{API: api, RemovedIn: rel.String()}
		}
		uses[api].Requested = true
	}
	var out []RemovedAPIUse
	for _, u := range uses {
		out = append(out, *u)
	}
	slices.SortFunc(out, func(a, b RemovedAPIUse) int { return strings.Compare(a.API, b.API) })
	return out, nil
}

func servedGroupVersions(d discovery.DiscoveryInterface) (map[string]bool, error) {
	groups, err := d.ServerGroups()
	if err != nil {
		return nil, fmt.Errorf("API groups: %w", err)
	}
	served := map[string]bool{}
	for _, g := range groups.Groups {
		for _, v := range g.Versions {
			served[v.GroupVersion] = true
		}
	}
	return served, nil
}

func parseLabels(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if ok {
			out[strings.TrimSpace(k)] = strings.Trim(v, `"`)
		}
	}
	return out
}
