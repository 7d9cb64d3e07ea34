package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"rackdrill.dev/rackdrill/internal/modinstall"
)

// TestGoInstallAtAVersion installs rackdrill the way a rack owner does, `go
// install rackdrill.dev/rackdrill/cmd/rackdrill@<version>`, from the module
// zip the Go toolchain would fetch for this commit (served by a file proxy
// made here: the module is not published to a proxy these machines reach),
// then validates and plans a rack from a directory with no repository in
// it. It catches what a build inside the clone cannot: a replace directive
// (go install refuses it), and a file the binary embeds that the module zip
// leaves out. The lab's smoke test runs the same installed binary against the
// lab over SSH (harness/cluster/containers).
func TestGoInstallAtAVersion(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("git", "-C", root, "rev-parse", "--verify", "HEAD").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but %s is not a git clone: %v", root, err)
		}
		t.Skipf("not a git clone: %v", err)
	}
	in, err := modinstall.Install(root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	seed, err := os.ReadFile(filepath.Join(root, "kind-configs", "rack-seed000.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "rack.yaml"), seed, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"validate", "rack.yaml"}, {"plan", "-t", "rack.yaml"}, {"version"},
		{"probes", "install", "--dry-run", "-t", "rack.yaml"}} {
		cmd := exec.Command(in.Bin, args...)
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("installed rackdrill %s: %v\n%s", strings.Join(args, " "), err, out)
			continue
		}
		switch args[0] {
		case "plan":
			if !strings.Contains(string(out), "(built in)") {
				t.Errorf("installed rackdrill plan does not use the built-in matrix:\n%s", out)
			}
		case "probes":
			// Outside a clone, the agent is built from the module at the
			// binary's own version.
			if want := "built on this machine from rackdrill.dev/rackdrill@" + in.Version; !strings.Contains(string(out), want) {
				t.Errorf("installed rackdrill probes install --dry-run lacks %q:\n%s", want, out)
			}
		case "version":
			if !strings.Contains(string(out), "rackdrill "+in.Version+"\n") {
				t.Errorf("installed rackdrill version does not say %s:\n%s", in.Version, out)
			}
		}
	}
}
