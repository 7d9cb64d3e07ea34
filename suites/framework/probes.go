package framework

import (
	"context"

	"rackdrill.dev/rackdrill/harness/probe"
)

// probes builds the matrix's probes against the rack under test.
func (e *Env) probes() ([]probe.Probe, map[string]string, *probe.Data, error) {
	return probe.ForRack(context.Background(), e.Rack, e.Nodes, e.Log)
}
