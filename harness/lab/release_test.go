package lab

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The derivation, run through the Go module proxy on the two releases the
// lab ships by hand, finds what was written by hand: what kubeadm of the
// release deploys and how it is built. Only code-generator may differ: the
// hand-written one is the minor's first, the derivation takes the release's
// own when the proxy serves it.
func TestDeriveReleaseAsShipped(t *testing.T) {
	for _, v := range ReleaseVersions() {
		got, err := deriveRelease(context.Background(), v, proxyModules{})
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		want := Releases[v]
		if got.CodeGenerator != want.Staging && got.CodeGenerator != "v0."+want.Minor+".0" {
			t.Errorf("%s: code-generator %s, want %s or v0.%s.0", v, got.CodeGenerator, want.Staging, want.Minor)
		}
		got.CodeGenerator = want.CodeGenerator
		if got != want {
			t.Errorf("%s derived\n got %+v\nwant %+v", v, got, want)
		}
	}
}

// fakeModules serves a k8s.io/kubernetes folder written by the test, and
// refuses what refused names.
type fakeModules struct {
	dir     string
	refused []string
	asked   []string
}

func (f *fakeModules) Dir(_ context.Context, mv string) (string, error) {
	f.asked = append(f.asked, mv)
	if slices.Contains(f.refused, mv) {
		return "", errors.New("403 Forbidden")
	}
	return f.dir, nil
}

func (f *fakeModules) GoMod(_ context.Context, mv string) (string, error) {
	f.asked = append(f.asked, mv)
	if slices.Contains(f.refused, mv) {
		return "", errors.New("403 Forbidden")
	}
	return filepath.Join(f.dir, "go.mod"), nil
}

func fakeKubernetes(t *testing.T, constants string) string {
	t.Helper()
	dir := t.TempDir()
	c := filepath.Join(dir, "cmd", "kubeadm", "app", "constants")
	if err := os.MkdirAll(c, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c, "constants.go"), []byte(constants), 0o644); err != nil {
		t.Fatal(err)
	}
	gomod := "module k8s.io/kubernetes\n\ngo 1.24.0\n\ngodebug default=go1.24\n"
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

const fakeConstants = `package constants

const (
	// DefaultEtcdVersion indicates the default etcd version that kubeadm uses.
	DefaultEtcdVersion = "3.6.4-0"
	CoreDNSVersion = "v1.12.1"
	PauseVersion = "3.10.1"
)
`

func TestDeriveRelease(t *testing.T) {
	f := &fakeModules{dir: fakeKubernetes(t, fakeConstants),
		refused: []string{"k8s.io/code-generator@v0.34.9", "go.etcd.io/etcd/etcdctl/v3@v3.6.4"}}
	r, err := deriveRelease(context.Background(), "v1.34.9", f)
	if err != nil {
		t.Fatal(err)
	}
	want := Release{Kubernetes: "v1.34.9", Minor: "34", Staging: "v0.34.9", CodeGenerator: "v0.34.0",
		Etcd: "3.6.4", Etcdctl: Releases["v1.34.4"].Etcdctl, CoreDNS: "v1.12.1", CoreDNSGo: "1.24.0", Pause: "3.10.1",
		Go: "1.24.0", GoDebug: "default=go1.24"}
	if r != want {
		t.Errorf("derived\n got %+v\nwant %+v", r, want)
	}
	for _, mv := range []string{"k8s.io/kubernetes@v1.34.9", "go.etcd.io/etcd/server/v3@v3.6.4", "github.com/coredns/coredns@v1.12.1"} {
		if !slices.Contains(f.asked, mv) {
			t.Errorf("%s was not asked of the proxy (asked %v)", mv, f.asked)
		}
	}
}

func TestDeriveReleaseRefuses(t *testing.T) {
	good := fakeKubernetes(t, fakeConstants)
	for _, c := range []struct {
		version string
		mods    *fakeModules
		want    string
	}{
		{"1.34.9", &fakeModules{dir: good}, `Kubernetes version "1.34.9": want v1.MINOR.PATCH`},
		{"v1.30.4", &fakeModules{dir: good}, "Kubernetes v1.30.4: the lab builds v1.31 and newer"},
		{"v1.34.9", &fakeModules{dir: good, refused: []string{"k8s.io/kubernetes@v1.34.9"}},
			"Kubernetes v1.34.9: the Go module proxy does not give k8s.io/kubernetes@v1.34.9: 403 Forbidden"},
		{"v1.34.9", &fakeModules{dir: fakeKubernetes(t, "package constants\n")}, "has no DefaultEtcdVersion"},
		{"v1.34.9", &fakeModules{dir: good, refused: []string{"k8s.io/code-generator@v0.34.9", "k8s.io/code-generator@v0.34.0"}},
			"k8s.io/code-generator: the Go module proxy serves none of v0.34.9, v0.34.0"},
		{"v1.34.9", &fakeModules{dir: good, refused: []string{"go.etcd.io/etcd/server/v3@v3.6.4"}}, "etcd 3.6.4 (kubeadm's DefaultEtcdVersion)"},
	} {
		_, err := deriveRelease(context.Background(), c.version, c.mods)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.version, err, c.want)
		}
	}
}

// A release's node image carries its own release's images and the shared
// ones, never another release's; its containerd runs its own pause.
func TestNodeImageOfARelease(t *testing.T) {
	node := catalog[NodeImage("v1.34.4")]
	if node == nil || node.Name != "v1.34.4/node" || !node.OnDemand {
		t.Fatalf("v1.34.4's node image: %+v", node)
	}
	for _, want := range []string{"rootfs", "v1.34.4/kube-apiserver", "v1.34.4/etcd", "v1.34.4/pause", "agent", "traefik", "tunnel-client"} {
		if !slices.Contains(node.Deps, want) {
			t.Errorf("v1.34.4/node lacks %s: %v", want, node.Deps)
		}
	}
	for _, d := range node.Deps {
		if d == "kube-apiserver" || d == "pause" || d == "etcd" {
			t.Errorf("v1.34.4/node carries the default release's %s", d)
		}
	}
	if NodeImage(KubernetesVersion) != "node" || catalog["node"].OnDemand {
		t.Errorf("the default release's node image is %q", NodeImage(KubernetesVersion))
	}

	dir := t.TempDir()
	if err := copyRecipe("node", dir); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "files", "etc", "containerd", "config.toml")
	if err := setSandboxImage(conf, "registry.k8s.io/pause:3.10.1"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(conf)
	if !strings.Contains(string(data), `sandbox_image = "registry.k8s.io/pause:3.10.1"`) || strings.Contains(string(data), `pause:3.10"`) {
		t.Errorf("containerd config after setSandboxImage:\n%s", data)
	}
	if err := setSandboxImage(filepath.Join(dir, "Dockerfile"), "x"); err == nil {
		t.Error("a file without sandbox_image was accepted")
	}
}
