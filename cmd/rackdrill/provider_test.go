package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"rackdrill.dev/rackdrill/harness/cluster/containers"
	"rackdrill.dev/rackdrill/harness/cluster/k3d"
	"rackdrill.dev/rackdrill/harness/fault"
)

// recover reaches a rack through the provider its fault was injected
// through, whichever that is. The first version knew the lab and ssh only:
// a k3d drill killed mid-fault could not be recovered ("provider k3d cannot
// recover yet").
func TestRecoverReachesEveryProvider(t *testing.T) {
	g := &globalOptions{artifacts: t.TempDir()}
	cmd := &cobra.Command{}
	for _, tc := range []struct {
		entry fault.Entry
		want  any
	}{
		{fault.Entry{ID: "a", Rack: "lab", Provider: "containers", Topology: "../../kind-configs/lab.yaml"}, &containers.Provider{}},
		{fault.Entry{ID: "b", Rack: "lab", Provider: "containers"}, &containers.Provider{}},
		{fault.Entry{ID: "c", Rack: "rackdrill-k3d", Provider: "k3d", Topology: "../../kind-configs/k3d-ha.yaml"}, &k3d.Provider{}},
	} {
		_, p, err := recoverProvider(cmd, g, tc.entry)
		if err != nil {
			t.Errorf("entry %s (%s): %v", tc.entry.ID, tc.entry.Provider, err)
			continue
		}
		if got, want := typeName(p), typeName(tc.want); got != want {
			t.Errorf("entry %s: provider %s, want %s", tc.entry.ID, got, want)
		}
	}
	// A topology that now describes another rack is not acted on.
	_, _, err := recoverProvider(cmd, g, fault.Entry{ID: "e", Rack: "other", Provider: "containers", Topology: "../../kind-configs/lab.yaml"})
	if err == nil || !strings.Contains(err.Error(), "injected into rack other") {
		t.Errorf("recover with another rack's topology: %v", err)
	}
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }
