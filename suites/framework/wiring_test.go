package framework_test

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestSuiteWiring runs the real ginkgo CLI over the suites in dry-run mode (no
// rack needed: specs are listed, not run) and checks that the labels select
// what a user expects: every matrix row in chaos, only the quorum row with
// "quorum", only the power drill with "power".
func TestSuiteWiring(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the suites: not in -short")
	}
	for _, tc := range []struct {
		labels, suite string
		ran, of       int
		mustList      []string
	}{
		{"chaos", "chaos", 10, 10, []string{"server-kill-1", "ups-power-loss"}},
		{"quorum", "chaos", 1, 10, []string{"server-kill-2: two servers killed (etcd quorum lost)"}},
		{"power", "chaos", 1, 10, []string{"ups-power-loss"}},
		{"disruptive && !quorum && !power", "chaos", 8, 10, []string{"nfs-lost"}},
		{"conformance", "conformance", 1, 1, []string{"every machine of spec.nodes"}},
	} {
		cmd := exec.Command("go", "tool", "ginkgo", "--dry-run", "-v", "--no-color", "--label-filter", tc.labels, "./suites/"+tc.suite)
		cmd.Dir = "../.."
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ginkgo --dry-run %s: %v\n%s", tc.labels, err, out)
		}
		want := regexp.MustCompile(`Ran (\d+) of (\d+) Specs`).FindStringSubmatch(string(out))
		if want == nil || want[1] != itoa(tc.ran) || want[2] != itoa(tc.of) {
			t.Errorf("label filter %q: %v, want Ran %d of %d\n%s", tc.labels, want, tc.ran, tc.of, out)
		}
		for _, s := range tc.mustList {
			if !strings.Contains(string(out), s) {
				t.Errorf("label filter %q does not list %q", tc.labels, s)
			}
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
