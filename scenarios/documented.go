package scenarios

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/topology"
)

// The documented matrix and the deviation overlays are built into every
// binary, so that rackdrill works from any directory; a file named by a flag
// or by the topology's spec.matrix replaces them.
//
//go:embed impact-matrix.yaml deviations-*.yaml rehearsal-matrix.yaml
var builtIn embed.FS

// RehearsalMatrix names the rehearsal's matrix built into rackdrill.
const RehearsalMatrix = "scenarios/rehearsal-matrix.yaml (built in)"

// RehearsalRow is the row a rehearsed upgrade is judged by (rolling-upgrade):
// the promises of a rack while it is upgraded machine by machine.
func RehearsalRow() (*matrix.Row, error) {
	data, err := builtIn.ReadFile("rehearsal-matrix.yaml")
	if err != nil {
		return nil, err
	}
	m, err := matrix.Parse(data, RehearsalMatrix)
	if err != nil {
		return nil, err
	}
	row := m.Row("rolling-upgrade")
	if row == nil {
		return nil, fmt.Errorf("%s: no row rolling-upgrade", RehearsalMatrix)
	}
	return row, nil
}

// BuiltInMatrix names the documented matrix built into rackdrill in messages.
const BuiltInMatrix = "scenarios/impact-matrix.yaml (built in)"

// MatrixFor loads the documented matrix rack r's promises are derived from:
// file when given (the --matrix flag), else the rack's own spec.matrix
// (relative to topologyFile), else the one built in. It returns the matrix
// and the name of where it came from.
func MatrixFor(file, topologyFile string, r *topology.Rack) (*matrix.Matrix, string, error) {
	switch {
	case file != "":
		m, err := matrix.Load(file)
		return m, file, err
	case r != nil && r.Spec.Matrix != "":
		path := r.Spec.Matrix
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(topologyFile), path)
		}
		m, err := matrix.Load(path)
		if err != nil {
			return nil, "", fmt.Errorf("%s: spec.matrix: %w", topologyFile, err)
		}
		return m, path, nil
	}
	data, err := builtIn.ReadFile("impact-matrix.yaml")
	if err != nil {
		return nil, "", err
	}
	m, err := matrix.Parse(data, BuiltInMatrix)
	return m, BuiltInMatrix, err
}

// DeviationsFor loads the deviation overlay for provider p and distribution
// dist checked against m: file when given (the --deviations flag), else the
// one built in for them, if any (nil, "" when there is none). A K3s rack's is
// its own (deviations-<provider>-k3s.yaml): K3s differs from kubeadm exactly
// where the matrix looks (its agents' own API load balancer, apps on its
// servers), and a kubeadm mechanism is no reason on K3s.
func DeviationsFor(file string, p topology.ProviderName, dist topology.Distribution, m *matrix.Matrix) (*matrix.Deviations, string, error) {
	if file != "" {
		d, err := matrix.LoadDeviations(file, m)
		return d, file, err
	}
	base := "deviations-" + string(p) + ".yaml"
	if dist != "" && dist != topology.DistributionKubeadm {
		base = "deviations-" + string(p) + "-" + string(dist) + ".yaml"
	}
	data, err := builtIn.ReadFile(base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	name := "scenarios/" + base + " (built in)"
	d, err := matrix.ParseDeviations(data, name, m)
	return d, name, err
}
