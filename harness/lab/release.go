package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/mod/modfile"
)

// MinDerivedMinor is the oldest minor the lab starts a cluster at: the lab
// writes kubeadm's v1beta4 configuration, which kubeadm reads from v1.31.
const MinDerivedMinor = 31

var (
	releaseMu sync.Mutex
	// derived are the releases ReleaseOf added to the catalog beyond Releases.
	derived = map[string]Release{}
)

var kubernetesVersionRE = regexp.MustCompile(`^v1\.(\d+)\.(\d+)$`)

// IsKubernetesRelease says whether version is written as the lab takes a
// Kubernetes release: v1.MINOR.PATCH.
func IsKubernetesRelease(version string) bool { return kubernetesVersionRE.MatchString(version) }

// ReleaseOf is Kubernetes release version as the lab builds it: one of
// Releases, or one derived from what kubeadm of that version deploys (its
// constants.go, read from the k8s.io/kubernetes module through the Go module
// proxy). A derived release's images are added to the catalog, named by
// version as a target's are (v1.33.6/kube-apiserver, v1.33.6/kit), with its own
// node image (v1.33.6/node): the lab may start at it.
func ReleaseOf(ctx context.Context, version string) (Release, error) {
	releaseMu.Lock()
	defer releaseMu.Unlock()
	if r, ok := Releases[version]; ok {
		return r, nil
	}
	if r, ok := derived[version]; ok {
		return r, nil
	}
	r, err := deriveRelease(ctx, version, proxyModules{})
	if err != nil {
		return Release{}, err
	}
	derived[version] = r
	addRelease(r, version+"/")
	return r, nil
}

// NodeImage names the node image of release version in the catalog: the
// default release's is "node", another's "v1.34.3/node" (ReleaseOf adds it).
func NodeImage(version string) string {
	if version == DefaultRelease.Kubernetes {
		return "node"
	}
	return version + "/node"
}

// modules is what the derivation reads through the Go module proxy.
type modules interface {
	// Dir downloads module@version and returns its folder.
	Dir(ctx context.Context, modVersion string) (string, error)
	// GoMod downloads only the go.mod of module@version and returns its path.
	GoMod(ctx context.Context, modVersion string) (string, error)
}

type proxyModules struct{}

func (proxyModules) Dir(ctx context.Context, mv string) (string, error) { return ModuleDir(ctx, mv) }
func (proxyModules) GoMod(ctx context.Context, mv string) (string, error) {
	return moduleGoMod(ctx, mv)
}

// deriveRelease reads release version from upstream: kubeadm's constants for
// etcd, CoreDNS and pause, the go and godebug lines of k8s.io/kubernetes's
// go.mod and CoreDNS's, and the module versions the proxy serves.
func deriveRelease(ctx context.Context, version string, mods modules) (Release, error) {
	m := kubernetesVersionRE.FindStringSubmatch(version)
	if m == nil {
		return Release{}, fmt.Errorf("Kubernetes version %q: want v1.MINOR.PATCH, such as %s", version, DefaultRelease.Kubernetes)
	}
	minor, _ := strconv.Atoi(m[1])
	if minor < MinDerivedMinor {
		return Release{}, fmt.Errorf("Kubernetes %s: the lab builds v1.%d and newer (its kubeadm configuration is v1beta4)", version, MinDerivedMinor)
	}
	dir, err := mods.Dir(ctx, "k8s.io/kubernetes@"+version)
	if err != nil {
		return Release{}, fmt.Errorf("Kubernetes %s: the Go module proxy does not give k8s.io/kubernetes@%s: %w", version, version, err)
	}
	r := Release{Kubernetes: version, Minor: m[1], Staging: "v0." + m[1] + "." + m[2]}
	constants := filepath.Join(dir, "cmd", "kubeadm", "app", "constants", "constants.go")
	src, err := os.ReadFile(constants)
	if err != nil {
		return Release{}, fmt.Errorf("Kubernetes %s: kubeadm's constants: %w", version, err)
	}
	for _, c := range []struct {
		name string
		into *string
	}{{"DefaultEtcdVersion", &r.Etcd}, {"CoreDNSVersion", &r.CoreDNS}, {"PauseVersion", &r.Pause}} {
		v := regexp.MustCompile(`(?m)^\s*` + c.name + `\s*=\s*"([^"]+)"`).FindSubmatch(src)
		if v == nil {
			return Release{}, fmt.Errorf("Kubernetes %s: %s has no %s", version, constants, c.name)
		}
		*c.into = string(v[1])
	}
	if !strings.HasSuffix(r.Etcd, "-0") {
		return Release{}, fmt.Errorf("Kubernetes %s: %s: DefaultEtcdVersion %q is not an image tag ending in -0", version, constants, r.Etcd)
	}
	r.Etcd = strings.TrimSuffix(r.Etcd, "-0")
	if r.Go, r.GoDebug, err = goLines(filepath.Join(dir, "go.mod")); err != nil {
		return Release{}, fmt.Errorf("Kubernetes %s: %w", version, err)
	}
	// The staging modules (k8s.io/api@v0.33.6 ...) are not asked here: the
	// proxy refuses the .info of some whose .zip it serves, which is all a
	// replace needs, so only the build knows (its hint says so).
	// code-generator of the same release, else the minor's first.
	if r.CodeGenerator, err = firstServed(ctx, mods, "k8s.io/code-generator", r.Staging, "v0."+m[1]+".0"); err != nil {
		return Release{}, fmt.Errorf("Kubernetes %s: %w", version, err)
	}
	if _, err := mods.GoMod(ctx, "go.etcd.io/etcd/server/v3@v"+r.Etcd); err != nil {
		return Release{}, fmt.Errorf("Kubernetes %s: etcd %s (kubeadm's DefaultEtcdVersion): %w", version, r.Etcd, err)
	}
	// etcdctl is only the lab's client: of the same etcd release, else the
	// one a shipped release of the same etcd minor builds with.
	candidates := []string{"v" + r.Etcd}
	for _, v := range ReleaseVersions() {
		if s := Releases[v]; etcdMinor(s.Etcd) == etcdMinor(r.Etcd) {
			candidates = append(candidates, s.Etcdctl)
		}
	}
	if r.Etcdctl, err = firstServed(ctx, mods, "go.etcd.io/etcd/etcdctl/v3", candidates...); err != nil {
		return Release{}, fmt.Errorf("Kubernetes %s: %w", version, err)
	}
	coredns, err := mods.GoMod(ctx, "github.com/coredns/coredns@"+r.CoreDNS)
	if err != nil {
		return Release{}, fmt.Errorf("Kubernetes %s: CoreDNS %s (kubeadm's CoreDNSVersion): %w", version, r.CoreDNS, err)
	}
	if r.CoreDNSGo, _, err = goLines(coredns); err != nil {
		return Release{}, fmt.Errorf("Kubernetes %s: CoreDNS %s: %w", version, r.CoreDNS, err)
	}
	return r, nil
}

func etcdMinor(v string) string {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return v
	}
	return parts[0] + "." + parts[1]
}

// firstServed is the first of versions of module the proxy serves.
func firstServed(ctx context.Context, mods modules, module string, versions ...string) (string, error) {
	var errs []string
	seen := map[string]bool{}
	for _, v := range versions {
		if seen[v] {
			continue
		}
		seen[v] = true
		if _, err := mods.GoMod(ctx, module+"@"+v); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		return v, nil
	}
	return "", fmt.Errorf("%s: the Go module proxy serves none of %s: %s", module, strings.Join(versions, ", "), strings.Join(errs, "; "))
}

// goLines reads the go directive and the godebug settings of a go.mod.
func goLines(path string) (goVersion, godebug string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	f, err := modfile.Parse(path, data, nil)
	if err != nil {
		return "", "", err
	}
	if f.Go == nil {
		return "", "", fmt.Errorf("%s has no go directive", path)
	}
	var debug []string
	for _, d := range f.Godebug {
		debug = append(debug, d.Key+"="+d.Value)
	}
	sort.Strings(debug)
	return f.Go.Version, strings.Join(debug, ","), nil
}
