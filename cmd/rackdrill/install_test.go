package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
)

// TestGoInstallAtAVersion installs rackdrill the way a rack owner does, `go
// install rackdrill.dev/rackdrill/cmd/rackdrill@<version>`, from the module
// zip the Go toolchain would fetch for this commit (served by a file proxy
// made here: the module is not published to a proxy these machines reach),
// then validates and plans a rack from a directory with no repository in
// it. It catches what a build inside the clone cannot: a replace directive
// (go install refuses it), and a file the binary embeds that the module zip
// leaves out.
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
	const version = "v0.0.1"
	mod := module.Version{Path: "rackdrill.dev/rackdrill", Version: version}
	proxy := t.TempDir()
	at := filepath.Join(proxy, "rackdrill.dev", "rackdrill", "@v")
	if err := os.MkdirAll(at, 0o755); err != nil {
		t.Fatal(err)
	}
	zf, err := os.Create(filepath.Join(at, version+".zip"))
	if err != nil {
		t.Fatal(err)
	}
	if err := modzip.CreateFromVCS(zf, mod, root, "HEAD", ""); err != nil {
		t.Fatalf("the module zip of HEAD: %v", err)
	}
	if err := zf.Close(); err != nil {
		t.Fatal(err)
	}
	gomod, err := exec.Command("git", "-C", root, "show", "HEAD:go.mod").Output()
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{
		"list":            []byte(version + "\n"),
		version + ".info": []byte(`{"Version":"` + version + `","Time":"2026-12-05T00:00:00Z"}`),
		version + ".mod":  gomod,
	} {
		if err := os.WriteFile(filepath.Join(at, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	upstream, err := exec.Command("go", "env", "GOPROXY").Output()
	if err != nil {
		t.Fatal(err)
	}
	work, gobin := t.TempDir(), t.TempDir()
	install := exec.Command("go", "install", "rackdrill.dev/rackdrill/cmd/rackdrill@"+version)
	install.Dir = work
	install.Env = append(os.Environ(),
		"GOPROXY=file://"+proxy+","+strings.TrimSpace(string(upstream)),
		"GONOSUMDB=rackdrill.dev/rackdrill", // a version made here: the checksum database has never seen it
		"GOBIN="+gobin, "GOFLAGS=", "GOWORK=off")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("go install rackdrill.dev/rackdrill/cmd/rackdrill@%s: %v\n%s", version, err, out)
	}
	seed, err := os.ReadFile(filepath.Join(root, "kind-configs", "rack-seed000.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "rack.yaml"), seed, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"validate", "rack.yaml"}, {"plan", "-t", "rack.yaml"}} {
		cmd := exec.Command(filepath.Join(gobin, "rackdrill"), args...)
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("installed rackdrill %s: %v\n%s", strings.Join(args, " "), err, out)
			continue
		}
		if args[0] == "plan" && !strings.Contains(string(out), "(built in)") {
			t.Errorf("installed rackdrill plan does not use the built-in matrix:\n%s", out)
		}
	}
}
