package rackstate

import (
	"slices"
	"testing"
)

func TestUnready(t *testing.T) {
	s := Snapshot{Workloads: []string{
		"Deployment kube-system/coredns: 2/2 ready",
		"Deployment rackdrill-probes/rackdrill-demo: 2 replicas",
		"DaemonSet metallb-system/speaker: 4/5 ready, nodeSelector {kubernetes.io/os=linux}",
		"DaemonSet traefik/traefik: 2/2 ready, nodeSelector {}",
		"Deployment metallb-system/controller: 0/1 ready",
	}}
	want := []string{s.Workloads[2], s.Workloads[4]}
	if got := s.Unready(); !slices.Equal(got, want) {
		t.Errorf("Unready() = %q, want %q", got, want)
	}
}
