package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Each patch of K3s's source must find its text exactly once: a source that
// moved on is refused, naming the file and the patch, not built half-patched.
func TestPatchK3s(t *testing.T) {
	src := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Each file holds its patches' texts, one after the other.
	files := map[string]*strings.Builder{}
	for _, p := range k3sPatches {
		b := files[p.file]
		if b == nil {
			b = &strings.Builder{}
			files[p.file] = b
		}
		if p.file == "go.mod" {
			b.WriteString("\t" + p.old + "\n")
		} else {
			b.WriteString(p.old + "\n")
		}
	}
	for name, b := range files {
		write(name, b.String())
	}
	if err := patchK3s(src); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(src, "go.mod"))
	if !strings.Contains(string(got), "github.com/containerd/containerd/v2 => github.com/containerd/containerd/v2 v2.3.4\n") || strings.Contains(string(got), "k3s-io/cri-tools") {
		t.Errorf("go.mod after the patches:\n%s", got)
	}
	if got, _ := os.ReadFile(filepath.Join(src, "cmd/server/main.go")); strings.Contains(string(got), "crictl") {
		t.Errorf("main.go after the patches:\n%s", got)
	}
	for _, name := range []string{"pkg/cli/ctr/ctr.go", "pkg/cli/kubectl/kubectl.go"} {
		prog := strings.TrimSuffix(filepath.Base(name), ".go")
		if got, _ := os.ReadFile(filepath.Join(src, name)); !strings.Contains(string(got), `os.Args = append([]string{"`+prog+`"}, ctx.Args().Slice()...)`) {
			t.Errorf("%s after the patches: `k3s %s ARGS` must run as `%s ARGS`:\n%s", name, prog, prog, got)
		}
	}
	// Patched again, the texts are gone: refused.
	err := patchK3s(src)
	if err == nil || !strings.Contains(err.Error(), "go.mod") || !strings.Contains(err.Error(), "found 0 times, want once") {
		t.Errorf("a source without the patches' texts: %v", err)
	}
}

func TestK3sSourceMissing(t *testing.T) {
	t.Setenv("RACKDRILL_THIRD_PARTY_DIR", t.TempDir())
	b := &Builder{CacheDir: t.TempDir(), RepoRoot: t.TempDir()}
	_, err := b.k3sSource(t.Context(), "k3s")
	if err == nil || !strings.Contains(err.Error(), k3sSourceFile) || !strings.Contains(err.Error(), "RACKDRILL_THIRD_PARTY_DIR") {
		t.Errorf("no K3s source: %v", err)
	}
	os.WriteFile(filepath.Join(os.Getenv("RACKDRILL_THIRD_PARTY_DIR"), k3sSourceFile), []byte("not K3s"), 0o644)
	_, err = b.k3sSource(t.Context(), "k3s")
	if err == nil || !strings.Contains(err.Error(), "not the K3s source this recipe builds") {
		t.Errorf("another archive: %v", err)
	}
}
