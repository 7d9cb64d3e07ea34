package fault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/rackclient"
)

// KubeClient returns a client of the rack's API; faults on cluster objects take
// it, and `rackdrill recover` passes the same through Env.
type KubeClient func(ctx context.Context) (kubernetes.Interface, error)

// noKube is the client of a planned fault: it reaches nothing.
func noKube(context.Context) (kubernetes.Interface, error) { return nil, errPlanned }

// DropSelectorKey is the nodeSelector key no node has: a DaemonSet that must
// selects it runs nowhere.
const DropSelectorKey = "rackdrill.dev/fault"

// Scale scales a Deployment to 0 and back to the replicas it had when the fault
// was built (the tunnel client, the MetalLB controller).
type Scale struct {
	name      string
	kube      KubeClient
	Namespace string `json:"namespace"`
	Object    string `json:"deployment"`
	Replicas  int32  `json:"replicas"`
}

// NewScale reads the Deployment's replicas now, so that the revert restores
// exactly them.
//
// With no client (a plan), it is only described.
func NewScale(ctx context.Context, name string, kube KubeClient, namespace, deployment string) (*Scale, error) {
	if kube == nil {
		return &Scale{name: name, kube: noKube, Namespace: namespace, Object: deployment}, nil
	}
	cs, err := kube(ctx)
	if err != nil {
		return nil, err
	}
	d, err := cs.AppsV1().Deployments(namespace).Get(ctx, deployment, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("fault %s: Deployment %s/%s: %w", name, namespace, deployment, err)
	}
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	if replicas == 0 {
		return nil, fmt.Errorf("fault %s: Deployment %s/%s is already scaled to 0 (an earlier fault not reverted? see `rackdrill recover`)", name, namespace, deployment)
	}
	return &Scale{name: name, kube: kube, Namespace: namespace, Object: deployment, Replicas: replicas}, nil
}

func (f *Scale) Name() string { return f.name }

func (f *Scale) scale(ctx context.Context, n int32) error {
	cs, err := f.kube(ctx)
	if err != nil {
		return err
	}
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, n)
	_, err = cs.AppsV1().Deployments(f.Namespace).Patch(ctx, f.Object, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: rackclient.FieldManager})
	if err != nil {
		return fmt.Errorf("scale Deployment %s/%s to %d: %w", f.Namespace, f.Object, n, err)
	}
	return nil
}

func (f *Scale) Inject(ctx context.Context) error { return f.scale(ctx, 0) }
func (f *Scale) Revert(ctx context.Context) error { return f.scale(ctx, f.Replicas) }

// Record implements Recordable.
func (f *Scale) Record() (string, any) { return "kube-scale", f }

// Unschedule moves a DaemonSet off every node with a nodeSelector no node has
// (the MetalLB speakers), and restores its exact previous nodeSelector.
type Unschedule struct {
	name      string
	kube      KubeClient
	Namespace string            `json:"namespace"`
	Object    string            `json:"daemonSet"`
	Previous  map[string]string `json:"previousNodeSelector"`
}

// NewUnschedule reads the DaemonSet's nodeSelector now.
// With no client (a plan), it is only described.
func NewUnschedule(ctx context.Context, name string, kube KubeClient, namespace, daemonSet string) (*Unschedule, error) {
	if kube == nil {
		return &Unschedule{name: name, kube: noKube, Namespace: namespace, Object: daemonSet}, nil
	}
	cs, err := kube(ctx)
	if err != nil {
		return nil, err
	}
	ds, err := cs.AppsV1().DaemonSets(namespace).Get(ctx, daemonSet, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("fault %s: DaemonSet %s/%s: %w", name, namespace, daemonSet, err)
	}
	prev := ds.Spec.Template.Spec.NodeSelector
	if _, dropped := prev[DropSelectorKey]; dropped {
		return nil, fmt.Errorf("fault %s: DaemonSet %s/%s already selects %s (an earlier fault not reverted? see `rackdrill recover`)", name, namespace, daemonSet, DropSelectorKey)
	}
	return &Unschedule{name: name, kube: kube, Namespace: namespace, Object: daemonSet, Previous: prev}, nil
}

func (f *Unschedule) Name() string { return f.name }

func (f *Unschedule) patch(ctx context.Context, selector map[string]any) error {
	cs, err := f.kube(ctx)
	if err != nil {
		return err
	}
	body, err := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"nodeSelector": selector}}}})
	if err != nil {
		return err
	}
	_, err = cs.AppsV1().DaemonSets(f.Namespace).Patch(ctx, f.Object, types.MergePatchType, body, metav1.PatchOptions{FieldManager: rackclient.FieldManager})
	if err != nil {
		return fmt.Errorf("patch the nodeSelector of DaemonSet %s/%s: %w", f.Namespace, f.Object, err)
	}
	return nil
}

func (f *Unschedule) Inject(ctx context.Context) error {
	return f.patch(ctx, map[string]any{DropSelectorKey: f.name})
}

// Revert removes the harness's key and sets every previous key again (a JSON
// merge patch: idempotent).
func (f *Unschedule) Revert(ctx context.Context) error {
	return f.patch(ctx, f.revertSelector())
}

// revertSelector is the merge patch of the nodeSelector that reverts the
// fault.
func (f *Unschedule) revertSelector() map[string]any {
	sel := map[string]any{DropSelectorKey: nil}
	for k, v := range f.Previous {
		sel[k] = v
	}
	return sel
}

// Record implements Recordable.
func (f *Unschedule) Record() (string, any) { return "kube-unschedule", f }

// All is several faults injected in order as one (the MetalLB controller and its
// speakers); they are reverted in reverse order, every one tried.
type All struct {
	name  string
	parts []Recordable
}

// NewAll groups parts under the fault name.
func NewAll(name string, parts ...Recordable) *All { return &All{name: name, parts: parts} }

func (f *All) Name() string { return f.name }

func (f *All) Inject(ctx context.Context) error {
	for _, p := range f.parts {
		if err := p.Inject(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (f *All) Revert(ctx context.Context) error {
	var errs []error
	for i := len(f.parts) - 1; i >= 0; i-- {
		errs = append(errs, f.parts[i].Revert(ctx))
	}
	return errors.Join(errs...)
}

type allPart struct {
	Kind   string          `json:"kind"`
	Params json.RawMessage `json:"params"`
}

// Record implements Recordable.
func (f *All) Record() (string, any) {
	var parts []allPart
	for _, p := range f.parts {
		kind, params := p.Record()
		raw, err := json.Marshal(params)
		if err != nil {
			raw = []byte("null")
		}
		parts = append(parts, allPart{Kind: kind, Params: raw})
	}
	return "all", parts
}

func kubeOf(env Env, name string) (KubeClient, error) {
	if env.Kube == nil {
		return nil, fmt.Errorf("fault %s: no client of the rack's API to revert it with", name)
	}
	return env.Kube, nil
}

func init() {
	Register("kube-scale", func(ctx context.Context, env Env, name string, raw json.RawMessage) (Fault, error) {
		kube, err := kubeOf(env, name)
		if err != nil {
			return nil, err
		}
		f := &Scale{name: name, kube: kube}
		if err := json.Unmarshal(raw, f); err != nil {
			return nil, fmt.Errorf("fault %s: %w", name, err)
		}
		return f, nil
	})
	Register("kube-unschedule", func(ctx context.Context, env Env, name string, raw json.RawMessage) (Fault, error) {
		kube, err := kubeOf(env, name)
		if err != nil {
			return nil, err
		}
		f := &Unschedule{name: name, kube: kube}
		if err := json.Unmarshal(raw, f); err != nil {
			return nil, fmt.Errorf("fault %s: %w", name, err)
		}
		return f, nil
	})
	Register("all", func(ctx context.Context, env Env, name string, raw json.RawMessage) (Fault, error) {
		var parts []allPart
		if err := json.Unmarshal(raw, &parts); err != nil {
			return nil, fmt.Errorf("fault %s: %w", name, err)
		}
		all := &All{name: name}
		for _, p := range parts {
			f, err := rebuild(ctx, env, Entry{Fault: name, Kind: p.Kind, Params: p.Params})
			if err != nil {
				return nil, err
			}
			r, ok := f.(Recordable)
			if !ok {
				return nil, fmt.Errorf("fault %s: part of kind %s cannot be recorded", name, p.Kind)
			}
			all.parts = append(all.parts, r)
		}
		return all, nil
	})
}

// KubeFrom returns a KubeClient built, on first use, from the kubeconfig src
// gives, pointed at server, each request bounded by rackclient.FaultTimeout.
func KubeFrom(src cluster.KubeconfigSource, server string) KubeClient {
	return rackclient.New(src, server, rackclient.FaultTimeout).Clientset
}
