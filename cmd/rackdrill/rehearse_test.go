package main

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The rehearsal reports each component's images after the upgrade, so that
// a member left at the old release shows beside the others.
func TestComponentImages(t *testing.T) {
	pod := func(labels map[string]string, image string) corev1.Pod {
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Image: image}}}}
	}
	etcd := map[string]string{"component": "etcd"}
	dns := map[string]string{"k8s-app": "kube-dns"}
	got := componentImages([]corev1.Pod{
		pod(etcd, "registry.k8s.io/etcd:3.6.5-0"), pod(etcd, "registry.k8s.io/etcd:3.5.24-0"), pod(etcd, "registry.k8s.io/etcd:3.6.5-0"),
		pod(dns, "registry.k8s.io/coredns/coredns:v1.12.1"), pod(nil, "elsewhere:1"),
	})
	if want := []string{"registry.k8s.io/etcd:3.5.24-0 ×1", "registry.k8s.io/etcd:3.6.5-0 ×2"}; !slices.Equal(got["etcd"], want) {
		t.Errorf("etcd: %q, want %q", got["etcd"], want)
	}
	if want := []string{"registry.k8s.io/coredns/coredns:v1.12.1 ×1"}; !slices.Equal(got["kube-dns"], want) || len(got) != 2 {
		t.Errorf("%q", got)
	}
}
