package scenarios_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/topology"
	"rackdrill.dev/rackdrill/scenarios"
)

// The binary carries the documented matrix and overlays: what it loads
// without a file is what the repository holds.
func TestBuiltInIsTheDocumentedMatrix(t *testing.T) {
	onDisk, err := matrix.Load("impact-matrix.yaml")
	if err != nil {
		t.Fatal(err)
	}
	builtIn, name, err := scenarios.MatrixFor("", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if name != scenarios.BuiltInMatrix || !reflect.DeepEqual(builtIn, onDisk) {
		t.Errorf("built-in matrix %q differs from impact-matrix.yaml", name)
	}
	for _, p := range []topology.ProviderName{topology.ProviderContainers, topology.ProviderSSH} {
		d, name, err := scenarios.DeviationsFor("", p, topology.DistributionKubeadm, builtIn)
		if err != nil || d == nil || !strings.Contains(name, "deviations-"+string(p)+".yaml") {
			t.Errorf("%s: overlay %q, %v", p, name, err)
		}
		file, err := matrix.LoadDeviations("deviations-"+string(p)+".yaml", builtIn)
		if err != nil || !reflect.DeepEqual(d.Deviations, file.Deviations) {
			t.Errorf("%s: built-in overlay differs from the file (%v)", p, err)
		}
	}
	// A K3s rack has its own overlays (a kubeadm mechanism is no reason on
	// K3s), each the same as its file.
	for _, p := range []topology.ProviderName{topology.ProviderContainers, topology.ProviderSSH} {
		base := "deviations-" + string(p) + "-k3s.yaml"
		d, name, err := scenarios.DeviationsFor("", p, topology.DistributionK3s, builtIn)
		if err != nil || d == nil || !strings.Contains(name, base) {
			t.Errorf("%s, k3s: overlay %q, %v", p, name, err)
			continue
		}
		if slices.ContainsFunc(d.Deviations, func(v matrix.Deviation) bool { return v.Fault == "cp-lb-lost" }) {
			t.Errorf("%s: declares cp-lb-lost deviations: K3s's agents' own load balancer keeps them from happening", base)
		}
		file, err := matrix.LoadDeviations(base, builtIn)
		if err != nil || !reflect.DeepEqual(d.Deviations, file.Deviations) || d.Environment != string(p) {
			t.Errorf("%s: built-in overlay differs from the file, or is for environment %q (%v)", base, d.Environment, err)
		}
	}
	if d, _, err := scenarios.DeviationsFor("", topology.ProviderK3d, topology.DistributionK3s, builtIn); d != nil || err != nil {
		t.Errorf("k3d has no overlay: %v, %v", d, err)
	}
}

// A rack names its own matrix (spec.matrix, beside its topology); the flag
// still wins.
func TestARackNamesItsOwnMatrix(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile("impact-matrix.yaml")
	if err != nil {
		t.Fatal(err)
	}
	own := strings.Replace(string(data), "observe: 120s", "observe: 150s", 1)
	if own == string(data) {
		t.Fatal("the matrix has no observe: 120s to change")
	}
	if err := os.WriteFile(filepath.Join(dir, "promises.yaml"), []byte(own), 0o644); err != nil {
		t.Fatal(err)
	}
	topo := filepath.Join(dir, "rack.yaml")
	r := &topology.Rack{Spec: topology.RackSpec{Matrix: "promises.yaml"}}
	m, name, err := scenarios.MatrixFor("", topo, r)
	if err != nil || name != filepath.Join(dir, "promises.yaml") {
		t.Fatalf("MatrixFor: %q, %v", name, err)
	}
	builtIn, _, _ := scenarios.MatrixFor("", "", nil)
	if reflect.DeepEqual(m, builtIn) {
		t.Error("the rack's own matrix was not read")
	}
	if _, name, _ := scenarios.MatrixFor("impact-matrix.yaml", topo, r); name != "impact-matrix.yaml" {
		t.Errorf("--matrix did not win: %s", name)
	}
	r.Spec.Matrix = "missing.yaml"
	if _, _, err := scenarios.MatrixFor("", topo, r); err == nil || !strings.Contains(err.Error(), topo+": spec.matrix: ") || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing matrix: %v", err)
	}
}

// The rehearsal's row is built in and judges every probe of the matrix: the
// API, the apps and the paths up through the upgrade, within their budgets.
func TestRehearsalRow(t *testing.T) {
	row, err := scenarios.RehearsalRow()
	if err != nil {
		t.Fatal(err)
	}
	if row.Fault != "rolling-upgrade" || row.Settle.Duration == 0 || row.Recovery.Duration == 0 {
		t.Fatalf("row %+v", row)
	}
	for _, p := range matrix.Probes {
		c, ok := row.Cells[p]
		if !ok {
			t.Errorf("no %s cell", p)
			continue
		}
		if p != "data" && (c.During != matrix.Up || c.Within.Duration == 0) {
			t.Errorf("%s: %s within %s: every path is promised up, with a budget", p, c.During, c.Within.Duration)
		}
	}
}
