package lab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	"rackdrill.dev/rackdrill/harness/exec"
)

// K3s is built from its source, which the Go module proxy does not serve: a
// git archive of upstream commit K3sCommit, found beside the clone in
// ../shared/third_party (or in $RACKDRILL_THIRD_PARTY_DIR), checked against
// K3sSourceSHA256.
const (
	K3sCommit       = "469d009fb2b4"
	K3sVersion      = "v1.36.3+k3s1" // Kubernetes v1.36.3-k3s1, etcd v3.6.14-k3s1 (its go.mod)
	K3sSourceSHA256 = "babfb2bc0c6c85fc8291f12a0dad6d1c5aab614fb7847742a76c3e820ad46811"
	k3sSourceFile   = "k3s-" + K3sCommit + ".tar.gz"
	// k3sTags are K3s's own build tags (its scripts/build) less those that
	// need C libraries the lab does not install (seccomp, selinux) or that
	// link sqlite statically (static_build, libsqlite3): a K3s with embedded
	// etcd does not use its sqlite.
	k3sTags = "ctrd netcgo osusergo providerless urfave_cli_no_docs sqlite_omit_load_extension"
	// runcTags are runc's own default build tags (its Makefile's).
	runcTags = "seccomp urfave_cli_no_docs"
)

// k3sPatches are the changes the lab makes to K3s's source, each an exact
// text that must be found: the proxy refuses two of K3s's forks.
var k3sPatches = []struct{ file, old, new, why string }{
	{"go.mod", "github.com/containerd/containerd/v2 => github.com/k3s-io/containerd/v2 v2.3.4-k3s1.36",
		"github.com/containerd/containerd/v2 => github.com/containerd/containerd/v2 v2.3.4",
		"the proxy refuses K3s's containerd fork; upstream v2.3.4 has every package K3s imports"},
	{"go.mod", "sigs.k8s.io/cri-tools => github.com/k3s-io/cri-tools v1.36.0-k3s1",
		"sigs.k8s.io/cri-tools => sigs.k8s.io/cri-tools v1.36.0",
		"the proxy refuses K3s's cri-tools fork, which only makes crictl's main package importable"},
	{"cmd/server/main.go", "\t\"github.com/k3s-io/k3s/pkg/cli/crictl\"\n", "", "no `k3s crictl`: upstream crictl is a program, not a package"},
	{"cmd/server/main.go", "\tcrictl2 \"sigs.k8s.io/cri-tools/cmd/crictl\"\n", "", "idem"},
	{"cmd/server/main.go", "\treexec.Register(\"crictl\", crictl2.Main)\n", "", "idem"},
	{"cmd/server/main.go", "\t\tcmds.NewCRICTL(crictl.Run),\n", "", "idem"},
	// K3s's own `k3s` is a wrapper (cmd/k3s) that runs `k3s ctr ARGS` as
	// `ctr ARGS` and `k3s kubectl ARGS` as `kubectl ARGS`: the multicall
	// binary then dispatches on its name. The lab installs the multicall
	// binary as k3s, without the wrapper (which embeds a tarball of the whole
	// build); these two make its ctr and kubectl commands do the same.
	{"pkg/cli/ctr/ctr.go", "import (\n\t\"github.com/k3s-io/k3s/pkg/ctr\"", "import (\n\t\"os\"\n\n\t\"github.com/k3s-io/k3s/pkg/ctr\"",
		"`k3s ctr ARGS` runs as `ctr ARGS`, as K3s's wrapper runs it"},
	{"pkg/cli/ctr/ctr.go", "\tctr.Main()\n", "\tos.Args = append([]string{\"ctr\"}, ctx.Args().Slice()...)\n\tctr.Main()\n", "idem"},
	{"pkg/cli/kubectl/kubectl.go", "import (\n\t\"github.com/k3s-io/k3s/pkg/kubectl\"", "import (\n\t\"os\"\n\n\t\"github.com/k3s-io/k3s/pkg/kubectl\"",
		"`k3s kubectl ARGS` runs as `kubectl ARGS`, as K3s's wrapper runs it"},
	{"pkg/cli/kubectl/kubectl.go", "\tkubectl.Main()\n", "\tos.Args = append([]string{\"kubectl\"}, ctx.Args().Slice()...)\n\tkubectl.Main()\n", "idem"},
}

// k3sFingerprint names the prepared source tree in the cache: the archive,
// the patches and the manifests copied in. (The image's tag hashes this whole
// file, build tags included.)
func k3sFingerprint() string {
	var b strings.Builder
	fmt.Fprintf(&b, "k3s %s %s\n", K3sCommit, K3sSourceSHA256)
	for _, p := range k3sPatches {
		fmt.Fprintf(&b, "patch %s %q -> %q\n", p.file, p.old, p.new)
	}
	b.WriteString("manifests -> pkg/deploy/embed\n")
	return b.String()
}

// ThirdPartyDir is where the sources the proxy does not serve are:
// $RACKDRILL_THIRD_PARTY_DIR, or ../shared/third_party beside the clone.
func (b *Builder) ThirdPartyDir() string {
	if d := os.Getenv("RACKDRILL_THIRD_PARTY_DIR"); d != "" {
		return d
	}
	return filepath.Join(filepath.Dir(b.RepoRoot), "shared", "third_party")
}

// k3sSource checks K3s's source archive and extracts it, patched, into the
// cache (once per fingerprint). It returns the source tree.
func (b *Builder) k3sSource(ctx context.Context, image string) (string, error) {
	archive := filepath.Join(b.ThirdPartyDir(), k3sSourceFile)
	f, err := os.Open(archive)
	if err != nil {
		return "", &StepError{Image: image, Step: "find K3s's source", Err: fmt.Errorf("%w: K3s is built from %s (K3s commit %s, not on the Go module proxy): "+
			"put it in ../shared/third_party beside the clone, or name its folder in RACKDRILL_THIRD_PARTY_DIR (docs/lab.md, \"K3s in the lab, from source\")", err, k3sSourceFile, K3sCommit)}
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	f.Close()
	if err != nil {
		return "", err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != K3sSourceSHA256 {
		return "", &StepError{Image: image, Step: "check K3s's source", Err: fmt.Errorf("%s has sha256 %s, not %s: not the K3s source this recipe builds", archive, got, K3sSourceSHA256)}
	}
	dir := filepath.Join(b.CacheDir, "k3s", shortHash(k3sFingerprint()))
	src := filepath.Join(dir, "k3s-"+K3sCommit)
	if _, err := os.Stat(filepath.Join(dir, ".done")); err == nil {
		return src, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := exec.Run(b.cmdr.Command(ctx, "tar", "-xzf", archive, "-C", dir)); err != nil {
		return "", &StepError{Image: image, Step: "extract " + archive, Err: err}
	}
	if err := patchK3s(src); err != nil {
		return "", &StepError{Image: image, Step: "patch K3s's source", Err: err}
	}
	// K3s's build script embeds its manifests (the RBAC of its cloud
	// controller, which untaints the nodes, and its add-ons) by copying them
	// into pkg/deploy/embed before go build: without them no node is ever
	// schedulable.
	if err := exec.Run(b.cmdr.Command(ctx, "cp", "-r", filepath.Join(src, "manifests")+"/.", filepath.Join(src, "pkg", "deploy", "embed"))); err != nil {
		return "", &StepError{Image: image, Step: "embed K3s's manifests", Err: err}
	}
	return src, os.WriteFile(filepath.Join(dir, ".done"), nil, 0o644)
}

// patchK3s applies k3sPatches to the source tree src: each text must be
// there exactly once.
func patchK3s(src string) error {
	for _, p := range k3sPatches {
		file := filepath.Join(src, p.file)
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		if n := strings.Count(string(data), p.old); n != 1 {
			return fmt.Errorf("%s: %q found %d times, want once (%s)", file, p.old, n, p.why)
		}
		if err := os.WriteFile(file, []byte(strings.Replace(string(data), p.old, p.new, 1)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

var runcReplaceRE = regexp.MustCompile(`(?m)^\s*github\.com/opencontainers/runc => github\.com/opencontainers/runc (v\S+)\s*$`)

// buildK3s makes the K3s machine image: the node image with K3s's binary,
// and runc and the containerd shim K3s runs its pods with.
func buildK3s(ctx context.Context, b *Builder, img *Image, tag string) error {
	src, err := b.k3sSource(ctx, img.Name)
	if err != nil {
		return err
	}
	dir, err := b.workDir(img.Name)
	if err != nil {
		return err
	}
	if err := copyRecipe("k3s", dir); err != nil {
		return &StepError{Image: img.Name, Step: "write recipe", Err: err}
	}
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	gobuild := func(where string, env []string, args ...string) error {
		cmd := b.cmdr.Command(ctx, "go", append([]string{"build", "-trimpath", "-mod=mod"}, args...)...)
		cmd.SetEnv(append([]string{"GOOS=linux", "GOARCH=amd64", "GOFLAGS=", "GOWORK=off"}, env...)...)
		if err := exec.Run(cmd.SetDir(where)); err != nil {
			return &StepError{Image: img.Name, Step: "go build " + args[len(args)-1], Err: err}
		}
		return nil
	}
	// K3s itself, cgo as upstream builds it; the version is what `k3s
	// --version` and the nodes say.
	ld := "-s -w -X github.com/k3s-io/k3s/pkg/version.Version=" + K3sVersion + " -X github.com/k3s-io/k3s/pkg/version.GitCommit=" + K3sCommit
	fmt.Fprintf(b.Out, "         k3s: go build ./cmd/server (cold: about 10 minutes on 2 cores)\n")
	if err := gobuild(src, []string{"CGO_ENABLED=1"}, "-tags", k3sTags, "-ldflags", ld, "-o", filepath.Join(bin, "k3s"), "./cmd/server"); err != nil {
		return err
	}
	// The containerd shim from K3s's own module graph.
	if err := gobuild(src, []string{"CGO_ENABLED=1"}, "-tags", strings.Replace(k3sTags, "netcgo", "netgo", 1), "-ldflags", "-s -w",
		"-o", filepath.Join(bin, "containerd-shim-runc-v2"), "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"); err != nil {
		return err
	}
	// runc at the version K3s pins, from its own module: K3s's graph holds
	// an older cilium/ebpf than runc's cgroups needs (upstream builds it
	// in its own tree too).
	gomod, err := os.ReadFile(filepath.Join(src, "go.mod"))
	if err != nil {
		return err
	}
	m := runcReplaceRE.FindSubmatch(gomod)
	if m == nil {
		return &StepError{Image: img.Name, Step: "find runc's version", Err: fmt.Errorf("%s/go.mod replaces no github.com/opencontainers/runc", src)}
	}
	runcMod, err := b.moduleDir(ctx, "github.com/opencontainers/runc@"+string(m[1]))
	if err != nil {
		return &StepError{Image: img.Name, Step: "download runc " + string(m[1]), Err: err}
	}
	runcSrc := filepath.Join(filepath.Dir(src), "runc-"+string(m[1]))
	if err := exec.Run(b.cmdr.Command(ctx, "bash", "-c", `rm -rf "$2" && cp -r "$1" "$2" && chmod -R u+w "$2"`, "copy", runcMod, runcSrc)); err != nil {
		return &StepError{Image: img.Name, Step: "copy runc's module", Err: err}
	}
	// With seccomp, as runc's own Makefile builds it: containerd hands runc
	// the pods' seccomp profile, and a runc without it fails every pod
	// ("config provided but seccomp not supported"). Linked to the
	// libseccomp of the node image's Debian (libseccomp-dev on this machine).
	if err := gobuild(runcSrc, []string{"CGO_ENABLED=1"}, "-tags", runcTags, "-ldflags", "-s -w", "-o", filepath.Join(bin, "runc"), "."); err != nil {
		if _, serr := os.Stat("/usr/include/seccomp.h"); serr != nil {
			return &StepError{Image: img.Name, Step: "go build runc with seccomp", Err: fmt.Errorf("%w (no /usr/include/seccomp.h: install libseccomp-dev, as make setup does)", err)}
		}
		return err
	}
	node, err := b.Tag("node")
	if err != nil {
		return err
	}
	tpl, err := template.ParseFS(recipes, "recipes/k3s/Dockerfile")
	if err != nil {
		return err
	}
	var df strings.Builder
	if err := tpl.Execute(&df, map[string]string{"Node": node}); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df.String()), 0o644); err != nil {
		return err
	}
	return b.dockerBuild(ctx, img, dir, tag)
}
