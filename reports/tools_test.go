package reports

import (
	"os"
	"os/exec"
	"testing"

	"rackdrill.dev/rackdrill/harness/runrecord"
)

// requireTool finds a program the reports' tests drive (xmllint, chromium),
// installed by `make setup` from Debian. Without it the test is skipped on a
// developer's machine and fails under CI, where setup has installed it.
func requireTool(t testing.TB, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set but none of %v is installed (hack/setup.sh installs them)", names)
	}
	t.Skipf("none of %v is installed (make setup installs them)", names)
	return ""
}

// recorded is the run.json of a real `make conformance` on the lab.
const recorded = "testdata/run.json.gz"

func loadRecorded(t testing.TB) *runrecord.Run {
	t.Helper()
	r, err := runrecord.Load(recorded)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
