package main

import (
	"path/filepath"

	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/topology"
	"rackdrill.dev/rackdrill/suites/framework"
)

// planRows plans the named scenarios (every row when none is named) on rack r
// with matrixFile (the shipped matrix when empty).
func planRows(r *topology.Rack, p topology.ProviderName, matrixFile string, scenarios []string) ([]framework.PlannedRow, error) {
	path := matrixFile
	if path == "" {
		root, err := lab.RepoRoot()
		if err != nil {
			return nil, err
		}
		path = filepath.Join(root, DefaultMatrix)
	}
	m, err := matrix.Load(path)
	if err != nil {
		return nil, err
	}
	return framework.PlanRows(m, path, r, p, scenarios)
}
