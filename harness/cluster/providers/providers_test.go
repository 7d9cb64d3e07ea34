package providers_test

import (
	"fmt"
	"strings"
	"testing"

	"rackdrill.dev/rackdrill/harness/cluster/providers"
	"rackdrill.dev/rackdrill/harness/topology"
)

// Every provider name the topology accepts has its provider, a rack whose
// machines rackdrill must never remove is not one it builds, and an unknown
// name is refused with the known ones.
func TestForKnowsEveryProvider(t *testing.T) {
	r, _, err := topology.Load("../../../kind-configs/k3d-ha.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[topology.ProviderName]string{
		topology.ProviderContainers: "*containers.Provider",
		topology.ProviderK3d:        "*k3d.Provider",
	} {
		rr := *r
		rr.Spec.Provider = name
		p, err := providers.For(&rr, providers.WithArtifacts(t.TempDir()))
		if err != nil || fmt.Sprintf("%T", p) != want {
			t.Errorf("For(%s) = %T, %v; want %s", name, p, err, want)
		}
		if !providers.Builds(name) {
			t.Errorf("Builds(%s) = false", name)
		}
	}
	if providers.Builds(topology.ProviderSSH) {
		t.Error("Builds(ssh) = true: rackdrill would remove a real rack's machines")
	}
	rr := *r
	rr.Spec.Provider = "vagrant"
	if _, err := providers.For(&rr); err == nil || !strings.Contains(err.Error(), `"vagrant": unknown`) || !strings.Contains(err.Error(), "ssh") {
		t.Errorf("For(vagrant): %v", err)
	}
}
