package containers

import (
	"context"
	"strings"
	"testing"

	"rackdrill.dev/rackdrill/harness/topology"
)

// The lab's UPS is NUT's dummy-ups: a topology whose UPS is read through its
// own commands (seed 002's) is refused before anything is built, rather than
// drilled on a UPS that is not the one it describes.
func TestUpRefusesAUPSNotRunByNUT(t *testing.T) {
	r, _, err := topology.Load("../../../kind-configs/rack-seed002.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := NewProvider(r.Metadata.Name)
	err = p.Up(context.Background(), r)
	if err == nil || !strings.Contains(err.Error(), "spec.ups.commands") || !strings.Contains(err.Error(), "provider ssh") {
		t.Fatalf("up: %v; want a refusal naming spec.ups.commands", err)
	}
	if p.docker != nil {
		t.Error("up connected to Docker before refusing")
	}
}
