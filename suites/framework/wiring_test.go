package framework_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestSuiteWiring runs the real ginkgo CLI over the suites in dry-run mode (no
// rack needed: specs are listed, not run) and checks that the labels select
// what a user expects: every matrix row in chaos, only the quorum row with
// "quorum", only the power drill with "power", each conformance check under
// its family and with the topology field it checks in its name.
func TestSuiteWiring(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the suites: not in -short")
	}
	never := filepath.Join(t.TempDir(), "never-up.yaml")
	lab, err := os.ReadFile("../../kind-configs/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(never, []byte(strings.Replace(string(lab), "name: lab\n", "name: wiring-never-up\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		labels, suite string
		ran, of       int
		mustList      []string
		args          []string
	}{
		{"chaos", "chaos", 10, 10, []string{"server-kill-1", "ups-power-loss"}, nil},
		{"quorum", "chaos", 1, 10, []string{"server-kill-2: two servers killed (etcd quorum lost)"}, nil},
		{"power", "chaos", 1, 10, []string{"ups-power-loss"}, nil},
		{"disruptive && !quorum && !power", "chaos", 8, 10, []string{"nfs-lost"}, nil},
		{"conformance", "conformance", 23, 23, []string{"every machine of spec.nodes", "[spec.ingress.ip]", "[spec.controlPlane.tlsSANs]"}, nil},
		{"ups", "conformance", 1, 23, []string{"the UPS answers"}, nil},
		// An upgrade suite exists only with its target release.
		{"preupgrade", "preupgrade", 5, 5, []string{"every node can be drained [spec.nodes]", "an etcd snapshot is saved"}, []string{"--to", "v1.34.4"}},
	} {
		// A dry run runs no spec; the topology of a rack that is never up makes
		// sure of it should the CLI ever not pass --dry-run through.
		args := append([]string{"tool", "ginkgo", "--dry-run", "-v", "--no-color", "--label-filter", tc.labels, "./suites/" + tc.suite,
			"--", "--topology", never, "--artifacts", t.TempDir()}, tc.args...)
		cmd := exec.Command("go", args...)
		cmd.Dir = "../.."
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ginkgo --dry-run %s: %v\n%s", tc.labels, err, out)
		}
		want := regexp.MustCompile(`Ran (\d+) of (\d+) Specs`).FindStringSubmatch(string(out))
		if want == nil || want[1] != itoa(tc.ran) || want[2] != itoa(tc.of) {
			t.Errorf("label filter %q: %v, want Ran %d of %d\n%s", tc.labels, want, tc.ran, tc.of, out)
		}
		if strings.Contains(string(out), "STEP:") {
			t.Errorf("label filter %q: the dry run ran specs:\n%s", tc.labels, out)
		}
		for _, s := range tc.mustList {
			if !strings.Contains(string(out), s) {
				t.Errorf("label filter %q does not list %q", tc.labels, s)
			}
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
