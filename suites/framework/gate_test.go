package framework_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The chaos suite run by go test (or the ginkgo CLI) on a real rack goes
// through the same gates as rackdrill run: the rows its label filter selects
// are gated and confirmed before any connection. The seed rack's addresses
// are moved to loopback first, so that even a broken gate could only knock
// on this machine's door.
func TestChaosSuiteOnARealRackIsGated(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the chaos suite: not in -short")
	}
	seed, err := os.ReadFile("../../kind-configs/rack-seed001.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	topo := filepath.Join(t.TempDir(), "rack.yaml")
	if err := os.WriteFile(topo, []byte(strings.ReplaceAll(string(seed), "192.168.", "127.77.")), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "chaos.test")
	if out, err := exec.Command("go", "test", "-c", "-o", bin, "../chaos").CombinedOutput(); err != nil {
		t.Fatalf("compile the chaos suite: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a label filter reaches the quorum row", []string{"-ginkgo.label-filter=disruptive"}, "server-kill-2 takes etcd below quorum"},
		{"allowed but not confirmed", []string{"-ginkgo.label-filter=disruptive", "-allow-quorum-loss"}, "stdin is not a terminal, pass --yes"},
		{"a focus reaches the quorum row", []string{"-ginkgo.focus=server-kill-2"}, "server-kill-2 takes etcd below quorum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-topology", topo, "-provider", "ssh", "-artifacts", t.TempDir()}, tc.args...)
			cmd := exec.Command(bin, args...)
			cmd.Dir = "../chaos"
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), "nothing was run on any machine") {
				t.Fatalf("chaos.test %s: %v, want a refusal saying %q:\n%s", strings.Join(args, " "), err, tc.want, out)
			}
			if strings.Contains(string(out), "Running Suite") || strings.Contains(string(out), "dial") {
				t.Errorf("specs ran, or a machine was dialled, after a refusal:\n%s", out)
			}
		})
	}
}
