package framework_test

import (
	"strings"
	"testing"

	"github.com/go-logr/logr"

	"rackdrill.dev/rackdrill/suites/framework"
)

// An overlay of known deviations describes one environment: the lab's must
// not judge a real rack, whose differences from the document have reasons of
// their own (or none).
func TestDeviationsOfAnotherEnvironmentAreRefused(t *testing.T) {
	_, err := framework.Load(logr.Discard(), framework.Options{
		Topology: "kind-configs/rack-seed001.example.yaml", Provider: "ssh",
		Deviations: "scenarios/deviations-containers.yaml", Artifacts: t.TempDir(),
	})
	if err == nil || !strings.Contains(err.Error(), `environment "containers" cannot judge this run (provider ssh, rack seed001)`) ||
		!strings.Contains(err.Error(), "deviations-containers.yaml") {
		t.Fatalf("the lab's overlay on a real rack: %v", err)
	}
	if _, err := framework.Load(logr.Discard(), framework.Options{
		Topology: "kind-configs/rack-seed001.example.yaml", Provider: "ssh", Artifacts: t.TempDir(),
	}); err != nil {
		t.Errorf("the default overlay of the provider: %v", err)
	}
}
