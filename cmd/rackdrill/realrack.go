package main

import (
	"rackdrill.dev/rackdrill/harness/promises"
	"rackdrill.dev/rackdrill/harness/topology"
	"rackdrill.dev/rackdrill/scenarios"
	"rackdrill.dev/rackdrill/suites/framework"
)

// rackPlan is what plan and a dry run print: the matrix derived for the
// rack and the rows that would run.
type rackPlan struct {
	MatrixFile string
	Derivation *promises.Derivation
	Rows       []framework.PlannedRow
}

// planRows plans the named faults (every row when none is named) on rack r,
// read from topologyFile, after deriving the rack's own promises from the
// documented matrix (matrixFile when given; see scenarios.MatrixFor).
func planRows(r *topology.Rack, topologyFile string, p topology.ProviderName, matrixFile string, faults []string) (*rackPlan, error) {
	m, path, err := scenarios.MatrixFor(matrixFile, topologyFile, r)
	if err != nil {
		return nil, err
	}
	d, err := promises.Derive(m, r, p)
	if err != nil {
		return nil, err
	}
	rows, err := framework.PlanRows(d, path, r, p, faults)
	if err != nil {
		return nil, err
	}
	return &rackPlan{MatrixFile: path, Derivation: d, Rows: rows}, nil
}
