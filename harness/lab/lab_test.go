package lab

import (
	"context"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCatalogOrder(t *testing.T) {
	names := Names()
	if len(names) != 14 || names[len(names)-1] != "node" {
		t.Fatalf("names %v", names)
	}
	pos := map[string]int{}
	for i, n := range names {
		pos[n] = i
	}
	for _, n := range []string{"kube-proxy", "tunnel-client", "node"} {
		if pos["rootfs"] > pos[n] {
			t.Errorf("%s is built before the rootfs it is made from", n)
		}
	}
	if _, err := buildOrder([]string{"kube-apiserver", "nope"}); err == nil || !strings.Contains(err.Error(), `unknown lab image "nope"`) {
		t.Errorf("unknown image: %v", err)
	}
}

// The node image carries exactly what kubeadm v1.33.13 pulls (as
// `kubeadm config images list` prints it) and the in-cluster images.
func TestPreloaded(t *testing.T) {
	want := []string{
		"docker.io/library/traefik:" + TraefikVersion,
		"quay.io/metallb/controller:v0.15.2",
		"quay.io/metallb/speaker:v0.15.2",
		"rackdrill.dev/agent:latest",
		"rackdrill.dev/tunnel-client:latest",
		"registry.k8s.io/coredns/coredns:v1.12.0",
		"registry.k8s.io/etcd:3.5.24-0",
		"registry.k8s.io/kube-apiserver:v1.33.13",
		"registry.k8s.io/kube-controller-manager:v1.33.13",
		"registry.k8s.io/kube-proxy:v1.33.13",
		"registry.k8s.io/kube-scheduler:v1.33.13",
		"registry.k8s.io/pause:3.10",
	}
	if got := Preloaded(); !slices.Equal(got, want) {
		t.Errorf("preloaded\n got %v\nwant %v", got, want)
	}
}

func TestVersionLDFlags(t *testing.T) {
	f := DefaultRelease.versionLDFlags()
	for _, want := range []string{"-X k8s.io/component-base/version.gitVersion=v1.33.13", "-X k8s.io/client-go/pkg/version.gitVersion=v1.33.13",
		"-X k8s.io/component-base/version.gitMinor=33", "-X k8s.io/component-base/version.gitTreeState=clean"} {
		if !strings.Contains(f, want) {
			t.Errorf("ldflags lack %q", want)
		}
	}
	if DefaultRelease.versionLDFlags() != f {
		t.Error("ldflags change between calls: the Go build cache would miss")
	}
	if n := len(DefaultRelease.stagingReplaces()); n != 31 {
		t.Errorf("%d staging replaces, want 30 modules + code-generator", n)
	}
}

// An upgrade's target is built as the lab's release is, at its own versions
// (kubeadm v1.34's constants: etcd 3.6.5-0, CoreDNS v1.12.1, pause 3.10.1),
// on demand, with builds of its own, and an upgrade kit made of its images.
func TestTargetRelease(t *testing.T) {
	r, ok := Releases["v1.34.4"]
	if !ok {
		t.Fatal("no v1.34.4 release")
	}
	if f := r.versionLDFlags(); !strings.Contains(f, "version.gitVersion=v1.34.4") || !strings.Contains(f, "version.gitMinor=34") {
		t.Errorf("ldflags %s", f)
	}
	for _, rep := range r.stagingReplaces() {
		if !strings.HasSuffix(rep, " v0.34.4") && rep != "k8s.io/code-generator => k8s.io/code-generator v0.34.0" {
			t.Errorf("replace %q is not of the release", rep)
		}
	}
	if g := r.kubernetesBuild(); g.Name == kubernetesBuild.Name || g.fingerprint() == kubernetesBuild.fingerprint() {
		t.Errorf("target build %q shares the lab's build", g.Name)
	}
	want := map[string]string{
		"v1.34.4/kube-apiserver": "registry.k8s.io/kube-apiserver:v1.34.4",
		"v1.34.4/kube-proxy":     "registry.k8s.io/kube-proxy:v1.34.4",
		"v1.34.4/etcd":           "registry.k8s.io/etcd:3.6.5-0",
		"v1.34.4/coredns":        "registry.k8s.io/coredns/coredns:v1.12.1",
		"v1.34.4/pause":          "registry.k8s.io/pause:3.10.1",
	}
	for name, alias := range want {
		img, ok := catalog[name]
		if !ok {
			t.Errorf("no image %s", name)
			continue
		}
		if img.Aliases[0] != alias || img.Preload || !img.OnDemand {
			t.Errorf("%s: alias %s preload %v on demand %v", name, img.Aliases[0], img.Preload, img.OnDemand)
		}
	}
	kit := catalog["v1.34.4/kit"]
	if kit == nil || len(kit.Deps) != 7 || !kit.OnDemand {
		t.Fatalf("kit %+v", kit)
	}
	if slices.Contains(Names(), "v1.34.4/kit") {
		t.Error("`rackdrill images` would build the target release")
	}
	order, err := buildOrder([]string{"v1.34.4/kit"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, img := range order {
		names = append(names, img.Name)
	}
	if len(names) != 9 || names[8] != "v1.34.4/kit" || slices.Index(names, "rootfs") > slices.Index(names, "v1.34.4/kube-proxy") {
		t.Errorf("kit's build order %v", names)
	}
}

// Tags are hashes of inputs: a change to this repository's agent sources
// changes the agent's tag and the node image's (which carries it), and nothing
// else's.
func TestTagsFollowInputs(t *testing.T) {
	repo := t.TempDir()
	for _, f := range []string{"cmd/rackdrill-agent/main.go", "harness/probe/agent/agent.go", "go.mod"} {
		if err := os.MkdirAll(filepath.Join(repo, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(repo, f), []byte("package x // "+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tags := func() map[string]string {
		b := &Builder{RepoRoot: repo, hashes: map[string]string{}, goVer: "go1.26.8"}
		out := map[string]string{}
		for _, n := range Names() {
			tag, err := b.Tag(n)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(tag, Repository+"/"+n+":") {
				t.Errorf("tag %s", tag)
			}
			out[n] = tag
		}
		return out
	}
	before := tags()
	if again := tags(); !mapsEqual(before, again) {
		t.Fatal("tags are not stable")
	}
	if err := os.WriteFile(filepath.Join(repo, "harness/probe/agent/agent.go"), []byte("package x // changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A test file is not an input.
	if err := os.WriteFile(filepath.Join(repo, "harness/probe/agent/agent_test.go"), []byte("package x"), 0o644); err != nil {
		t.Fatal(err)
	}
	after := tags()
	for n := range before {
		changed := before[n] != after[n]
		if want := n == "agent" || n == "node"; changed != want {
			t.Errorf("%s: tag changed %v, want %v", n, changed, want)
		}
	}
	// A new Go toolchain rebuilds what Go builds (and the node, which carries
	// it), not the Debian rootfs, the pause image or the tunnel client.
	b := &Builder{RepoRoot: repo, hashes: map[string]string{}, goVer: "go1.27.0"}
	for n, tag := range after {
		got, _ := b.Tag(n)
		want := catalog[n].Go != nil || n == "node"
		if changed := got != tag; changed != want {
			t.Errorf("%s: tag changed %v with the Go toolchain, want %v", n, changed, want)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// The Go outputs of this repository's own programs follow their sources: a
// changed agent source must not reuse the binary built from the old one.
func TestLocalBinariesFollowSources(t *testing.T) {
	repo := t.TempDir()
	write := func(content string) {
		for _, f := range []string{"go.mod", "cmd/rackdrill-agent/main.go", "harness/probe/agent/doc.go"} {
			_ = os.MkdirAll(filepath.Join(repo, filepath.Dir(f)), 0o755)
			data := content
			switch f {
			case "go.mod":
				data = "module rackdrill.dev/rackdrill\n\ngo 1.24\n"
			case "harness/probe/agent/doc.go":
				data = "package agent\n"
			}
			if err := os.WriteFile(filepath.Join(repo, f), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	b, err := NewBuilder(repo, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b.CacheDir = t.TempDir()
	run := func() string {
		b.hashes = map[string]string{}
		dir, err := b.binaries(context.Background(), "agent", catalog["agent"].Go)
		if err != nil {
			t.Fatal(err)
		}
		out, err := osexec.Command(filepath.Join(dir, "rackdrill-agent")).Output()
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	write("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Print(\"one\") }\n")
	if got := run(); got != "one" {
		t.Fatalf("first build prints %q", got)
	}
	write("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Print(\"two\") }\n")
	if got := run(); got != "two" {
		t.Fatalf("after a source change the binary prints %q: a stale build was reused", got)
	}
}

// docs/lab.md names the versions the lab really runs.
func TestDocsVersions(t *testing.T) {
	data, err := os.ReadFile("../../docs/lab.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"Kubernetes " + KubernetesVersion, "etcd " + EtcdVersion, "CoreDNS " + CoreDNSVersion,
		"pause " + PauseVersion, "MetalLB " + MetalLBVersion, "Traefik " + TraefikVersion, "Debian " + debianSuite} {
		if !strings.Contains(string(data), v) {
			t.Errorf("docs/lab.md does not say %q", v)
		}
	}
}
