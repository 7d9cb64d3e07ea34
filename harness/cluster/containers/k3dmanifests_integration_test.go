package containers_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"

	"rackdrill.dev/rackdrill/harness/cluster/k3d"
	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/probe"
	"rackdrill.dev/rackdrill/harness/topology"
)

// k3dManifestsOnLab validates every manifest the k3d provider applies against
// a real Kubernetes v1.33 API server, the smoke lab's: each object is applied
// server-side with dryRun=All and strict field validation, so an unknown field,
// a wrong type or an object the API rejects fails here, though k3d itself
// cannot run on this machine. Namespaces the manifests create are created for
// real (a dry-run object cannot live in a namespace that does not exist) and
// removed after.
func k3dManifestsOnLab(ctx context.Context, t *testing.T, kubeconfig string) {
	t.Run("every manifest of the k3d provider is valid for the v1.33 API", func(t *testing.T) {
		root, err := lab.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		r, _, err := topology.Load(filepath.Join(root, "kind-configs", "k3d-ha.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		ms, err := k3d.Manifests(ctx, r, k3d.NewToken())
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := probe.RESTConfig(data, "")
		if err != nil {
			t.Fatal(err)
		}
		cs := kubernetes.NewForConfigOrDie(cfg)
		dyn := dynamic.NewForConfigOrDie(cfg)
		mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(cfg)))
		total := 0
		for _, m := range ms {
			dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader([]byte(m.YAML)), 4096)
			for {
				var obj unstructured.Unstructured
				if err := dec.Decode(&obj.Object); errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					t.Fatalf("%s: %v", m.Name, err)
				}
				if len(obj.Object) == 0 {
					continue
				}
				total++
				gvk := obj.GroupVersionKind()
				if gvk.Kind == "Namespace" {
					_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: obj.GetName()}}, metav1.CreateOptions{})
					if err == nil {
						name := obj.GetName()
						t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{}) })
					} else if !apierrors.IsAlreadyExists(err) {
						t.Fatalf("%s: namespace %s: %v", m.Name, obj.GetName(), err)
					}
				}
				mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
				if err != nil {
					t.Errorf("%s: %s %s: the v1.33 API does not serve it: %v", m.Name, gvk, obj.GetName(), err)
					continue
				}
				body, _ := obj.MarshalJSON()
				force := true
				_, err = dyn.Resource(mapping.Resource).Namespace(obj.GetNamespace()).Patch(ctx, obj.GetName(), types.ApplyPatchType, body,
					metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}, FieldManager: "rackdrill-k3d-validate", Force: &force, FieldValidation: "Strict"})
				if err != nil {
					t.Errorf("%s: %s %s/%s rejected by the API server: %v", m.Name, gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
				}
			}
		}
		t.Logf("%d objects in %d manifests accepted by the API server (dry run, strict fields)", total, len(ms))
		if total < 20 {
			t.Errorf("only %d objects: the manifests are not all there", total)
		}
	})
}
