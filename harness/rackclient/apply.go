package rackclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// Applier applies manifests server-side, with strict field validation: an
// unknown field or a wrong type is refused by the API server, not dropped.
type Applier struct {
	dyn    dynamic.Interface
	mapper meta.ResettableRESTMapper
	// DryRun asks the API server to validate (admission webhooks included)
	// and persist nothing.
	DryRun bool
}

// NewApplier reaches the API server of cfg.
func NewApplier(cfg *rest.Config) (*Applier, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}, nil
}

// Manifest is one file of what the harness installs: its name (in errors)
// and its YAML documents.
type Manifest struct {
	Name string
	YAML string
}

// Objects decodes a manifest's YAML documents.
func Objects(m Manifest) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader([]byte(m.YAML)), 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Name, err)
		}
		if len(obj.Object) > 0 {
			out = append(out, obj)
		}
	}
}

// Apply applies every object of m, in order, and says how many it applied. A
// kind the server does not know yet (a CRD just created) is looked up again.
func (a *Applier) Apply(ctx context.Context, m Manifest) (int, error) {
	objs, err := Objects(m)
	if err != nil {
		return 0, err
	}
	return a.ApplyObjects(ctx, m.Name, objs)
}

// ApplyObjects applies objs, in order, as Apply does; name says what they are
// in errors.
func (a *Applier) ApplyObjects(ctx context.Context, name string, objs []*unstructured.Unstructured) (int, error) {
	opts := metav1.PatchOptions{FieldManager: FieldManager, Force: ptrTrue(), FieldValidation: "Strict"}
	if a.DryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	for i, obj := range objs {
		gvk := obj.GroupVersionKind()
		mapping, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) {
			a.mapper.Reset()
			mapping, err = a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		}
		if err != nil {
			return i, fmt.Errorf("%s: %s %s: %w", name, gvk, obj.GetName(), err)
		}
		body, err := obj.MarshalJSON()
		if err != nil {
			return i, err
		}
		var ri dynamic.ResourceInterface = a.dyn.Resource(mapping.Resource)
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			ri = a.dyn.Resource(mapping.Resource).Namespace(obj.GetNamespace())
		}
		if _, err := ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, body, opts); err != nil {
			return i, fmt.Errorf("%s: %s %s/%s: %w", name, gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
		}
	}
	return len(objs), nil
}

func ptrTrue() *bool { t := true; return &t }
