package lab_test

import (
	"context"
	"encoding/json"
	osexec "os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/internal/dockertest"
)

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// newTestBuilder is a Builder of this repository that logs to t.
func newTestBuilder(t *testing.T) *lab.Builder {
	t.Helper()
	root, err := lab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := lab.NewBuilder(root, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestIntegrationLabImages builds every lab image (cached: seconds when they
// exist, the whole cold build on a fresh machine) and checks the node image: its
// kubeadm is v1.33.13, and the images it preloads are exactly what that kubeadm
// pulls plus the in-cluster images, as the tarballs themselves name them.
func TestIntegrationLabImages(t *testing.T) {
	dockertest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Minute)
	defer cancel()
	b := newTestBuilder(t)
	if _, err := b.Build(ctx); err != nil {
		t.Fatal(err)
	}
	node, _ := b.Tag("node")
	run := func(args ...string) string {
		t.Helper()
		out, err := osexec.CommandContext(ctx, "docker", append([]string{"run", "--rm", node}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("docker run %s %v: %v\n%s", node, args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if v := run("kubeadm", "version", "-o", "short"); v != lab.KubernetesVersion {
		t.Errorf("kubeadm version %q, want %s", v, lab.KubernetesVersion)
	}
	for _, args := range [][]string{{"kubelet", "--version"}, {"kubectl", "version", "--client"}} {
		if v := run(args...); !strings.Contains(v, lab.KubernetesVersion) {
			t.Errorf("%v: %q", args, v)
		}
	}
	var kubeadmImages []string
	for _, l := range strings.Split(run("kubeadm", "config", "images", "list", "--kubernetes-version", lab.KubernetesVersion), "\n") {
		if strings.Contains(l, "/") && !strings.Contains(l, " ") {
			kubeadmImages = append(kubeadmImages, l)
		}
	}
	if len(kubeadmImages) != 7 {
		t.Fatalf("kubeadm lists %d images: %v", len(kubeadmImages), kubeadmImages)
	}
	want := append([]string(nil), kubeadmImages...)
	for _, p := range lab.Preloaded() {
		if !strings.HasPrefix(p, "registry.k8s.io/") {
			want = append(want, p)
		}
	}
	sort.Strings(want)
	// What the tarballs hold, by their own manifests.
	var inTars []string
	for _, l := range strings.Split(run("sh", "-c", `for t in /opt/rackdrill/images/*.tar; do tar -xOf "$t" manifest.json; echo; done`), "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		var m []struct{ RepoTags []string }
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("manifest %q: %v", l, err)
		}
		for _, e := range m {
			for _, tag := range e.RepoTags {
				// docker save writes Docker Hub's official images short
				// (traefik:v3.6.12); containerd imports them under their full name.
				if !strings.Contains(strings.Split(tag, ":")[0], "/") {
					tag = "docker.io/library/" + tag
				}
				inTars = append(inTars, tag)
			}
		}
	}
	sort.Strings(inTars)
	if !slices.Equal(inTars, want) {
		t.Errorf("preloaded images\n got %v\nwant %v (kubeadm's %v + in-cluster)", inTars, want, kubeadmImages)
	}
	listed := strings.Split(run("cat", "/opt/rackdrill/images/images.txt"), "\n")
	if !slices.Equal(listed, want) {
		t.Errorf("images.txt %v, want %v", listed, want)
	}
	// A second build with nothing changed rebuilds nothing.
	results, err := b.Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if !r.Cached {
			t.Errorf("%s rebuilt with unchanged inputs", r.Image)
		}
	}
	t.Logf("node image %s", node)
}
