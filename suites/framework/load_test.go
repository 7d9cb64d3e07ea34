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

// The converged lab's derived matrix promises lan and internet down when the
// VIP is gone (cp-lb-lost): the lab's overlay, written against the documented
// matrix, declares that as a deviation. The run loads, and the deviation that
// is now the promise is dropped, not applied or refused.
func TestDeviationsTheDerivedMatrixPromises(t *testing.T) {
	env, err := framework.Load(logr.Discard(), framework.Options{
		Topology: "kind-configs/lab-converged.yaml", Artifacts: t.TempDir(),
	})
	if err != nil {
		t.Fatalf("the converged lab with the lab's overlay: %v", err)
	}
	for _, dv := range env.Deviations.Deviations {
		row := env.Matrix.Row(dv.Fault)
		if string(row.Cells[dv.Probe].During) == dv.Observed {
			t.Errorf("deviation %s %s %s is the derived promise itself", dv.Fault, dv.Probe, dv.Observed)
		}
	}
	var flapping int
	for _, dv := range env.Deviations.Deviations {
		if dv.Fault == "cp-lb-lost" && dv.Observed == "flapping" {
			flapping++
		}
	}
	if flapping != 2 {
		t.Errorf("cp-lb-lost's flapping deviations (lan, internet) must stay: %d", flapping)
	}
}
