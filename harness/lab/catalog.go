package lab

import (
	"context"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
)

// Versions of everything the lab runs; docs/lab.md lists them (TestDocsVersions).
const (
	KubernetesVersion = "v1.33.13"
	stagingVersion    = "v0.33.13"
	EtcdVersion       = "3.5.24"
	etcdctlVersion    = "v3.5.21" // etcdctl's v3.5.24 module is not served; v3.5.21 builds with the 3.5.24 client
	CoreDNSVersion    = "v1.12.0"
	PauseVersion      = "3.10"
	MetalLBVersion    = "v0.15.2"
	TraefikVersion    = "v3.6.12" // v3.7 needs modules the proxy refuses (DNS-provider SDKs, a containous fork)
	FRPVersion        = "v0.70.1" // not on every module proxy: docs/lab.md, "FRP"
	debianSuite       = "bookworm"
	debianMirror      = "http://deb.debian.org/debian"
)

// Image is one image of the lab.
type Image struct {
	Name    string
	Summary string
	// Aliases are the names the cluster knows the image by
	// (registry.k8s.io/kube-apiserver:v1.33.13), tagged besides the content tag.
	Aliases []string
	// Recipes are the embedded recipe folders the image is made from.
	Recipes []string
	// Go is the build of the image's binaries, if any.
	Go *GoBuild
	// Bins are the binaries of Go the image carries: name -> path in the image.
	Bins map[string]string
	// Sources are folders of this repository the image is built from.
	Sources []string
	// Deps are images this one is built from or carries.
	Deps []string
	// Preload: the node image carries it, imported into containerd at boot.
	Preload bool
	// OnDemand: built only when named (a topology needs it, `rackdrill
	// images NAME`), never by default: FRP's module is not on every proxy.
	OnDemand bool
	// Entrypoint of a FROM scratch image; Collect lists files of the rootfs
	// (with their libraries) the image needs beside its binaries.
	Entrypoint []string
	Collect    []string
	build      func(ctx context.Context, b *Builder, img *Image, tag string) error
	// release is the Kubernetes release of the image's components.
	release Release
}

// Release is one Kubernetes release the lab builds: its components at the
// versions kubeadm of that release deploys (its constants.go), built the same way.
type Release struct {
	Kubernetes    string // v1.33.13
	Minor         string // 33
	Staging       string // v0.33.13: the staging modules' release
	CodeGenerator string // the code-generator release the proxy serves
	Etcd          string // 3.5.24 (kubeadm's tag adds -0)
	Etcdctl       string // etcdctl's module version
	CoreDNS       string
	CoreDNSGo     string // the go directive of CoreDNS's go.mod
	Pause         string
	Go, GoDebug   string // the go and godebug lines of k8s.io/kubernetes's go.mod
}

// DefaultRelease is the release the lab's machines run.
var DefaultRelease = Release{Kubernetes: KubernetesVersion, Minor: "33", Staging: stagingVersion,
	CodeGenerator: "v0.33.0", Etcd: EtcdVersion, Etcdctl: etcdctlVersion, CoreDNS: CoreDNSVersion, CoreDNSGo: "1.22.7", Pause: PauseVersion,
	Go: "1.24.0", GoDebug: "default=go1.24"}

// Releases are the releases the lab ships recipes for, tested: the lab's own,
// and the target an upgrade is rehearsed to (their images built on demand,
// named by release: v1.34.4/kube-apiserver). ReleaseOf derives any other.
var Releases = map[string]Release{
	KubernetesVersion: DefaultRelease,
	"v1.34.4": {Kubernetes: "v1.34.4", Minor: "34", Staging: "v0.34.4", CodeGenerator: "v0.34.0",
		Etcd: "3.6.5", Etcdctl: "v3.6.5", CoreDNS: "v1.12.1", CoreDNSGo: "1.23.0", Pause: "3.10.1",
		Go: "1.24.0", GoDebug: "default=go1.24"},
}

// ReleaseVersions lists the releases the lab can build, oldest first.
func ReleaseVersions() []string {
	var out []string
	for v := range Releases {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return Releases[out[i]].Minor < Releases[out[j]].Minor })
	return out
}

// buildName names a Go build of the release: a target's builds have their
// own build module and outputs (kubernetes-v1.34.4).
func (r Release) buildName(name string) string {
	if r == DefaultRelease {
		return name
	}
	return name + "-" + r.Kubernetes
}

// EtcdTag is the etcd image tag kubeadm of the release deploys.
func (r Release) EtcdTag() string { return r.Etcd + "-0" }

func (r Release) kubernetesBuild() *GoBuild {
	return &GoBuild{
		Name: r.buildName("kubernetes"), GoDirective: r.Go, GoDebug: r.GoDebug,
		Require: []string{"k8s.io/kubernetes " + r.Kubernetes},
		Replace: r.stagingReplaces(),
		Packages: []string{"k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kube-controller-manager",
			"k8s.io/kubernetes/cmd/kube-scheduler", "k8s.io/kubernetes/cmd/kube-proxy", "k8s.io/kubernetes/cmd/kubelet",
			"k8s.io/kubernetes/cmd/kubeadm", "k8s.io/kubernetes/cmd/kubectl"},
		LDFlags: r.versionLDFlags(),
		Hint:    r.buildHint(),
	}
}

// buildHint is said when the build of a derived release fails: the module
// proxy serves k8s.io/kubernetes at some releases whose staging modules it
// partly refuses (v1.33.6: cri-client, kube-proxy and six others, 403).
func (r Release) buildHint() string {
	if _, shipped := Releases[r.Kubernetes]; shipped {
		return ""
	}
	return fmt.Sprintf("Kubernetes %s is derived, not one the lab ships (%s): if the lines above say 403 Forbidden for k8s.io modules at %s, "+
		"the Go module proxy does not serve all of this release, and the lab cannot build it here; another patch release of v1.%s may be served whole",
		r.Kubernetes, strings.Join(ReleaseVersions(), ", "), r.Staging, r.Minor)
}

var kubernetesBuild = DefaultRelease.kubernetesBuild()

// stagingModules are the staging modules of k8s.io/kubernetes (k8s.io/NAME).
var stagingModules = []string{"api", "apiextensions-apiserver", "apimachinery", "apiserver", "cli-runtime", "client-go",
	"cloud-provider", "cluster-bootstrap", "component-base", "component-helpers", "controller-manager",
	"cri-api", "cri-client", "csi-translation-lib", "dynamic-resource-allocation", "endpointslice", "externaljwt",
	"kms", "kube-aggregator", "kube-controller-manager", "kube-proxy", "kube-scheduler", "kubectl", "kubelet",
	"metrics", "mount-utils", "pod-security-admission", "sample-apiserver", "sample-cli-plugin", "sample-controller"}

// stagingReplaces maps every staging module of k8s.io/kubernetes (the
// ./staging/... replaces of its own go.mod) to its release.
func (r Release) stagingReplaces() []string {
	var out []string
	for _, m := range stagingModules {
		out = append(out, fmt.Sprintf("k8s.io/%s => k8s.io/%s %s", m, m, r.Staging))
	}
	return append(out, "k8s.io/code-generator => k8s.io/code-generator "+r.CodeGenerator)
}

// versionLDFlags stamps the version kubeadm's preflight and the nodes report.
// The build date is fixed so that the flags, and so the build cache, never change.
func (r Release) versionLDFlags() string {
	var parts []string
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		for k, v := range map[string]string{"gitVersion": r.Kubernetes, "gitMajor": "1", "gitMinor": r.Minor,
			"gitTreeState": "clean", "gitCommit": "0000000000000000000000000000000000000000", "buildDate": "2026-01-01T00:00:00Z"} {
			parts = append(parts, fmt.Sprintf("-X %s.%s=%s", pkg, k, v))
		}
	}
	sort.Strings(parts)
	return "-s -w " + strings.Join(parts, " ")
}

func (r Release) etcdBuild() *GoBuild {
	return &GoBuild{
		Name: r.buildName("etcd"), GoDirective: "1.24",
		Require: []string{"go.etcd.io/etcd/server/v3 v" + r.Etcd, "go.etcd.io/etcd/etcdctl/v3 " + r.Etcdctl},
		Mains: map[string]string{"etcd": `// etcd as upstream's binary: etcdmain.Main of the pinned server module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
`},
		Packages: []string{"./etcd", "go.etcd.io/etcd/etcdctl/v3"},
		LDFlags:  "-s -w",
	}
}

var etcdBuild = DefaultRelease.etcdBuild()

var corednsBuild = DefaultRelease.corednsBuild()

func (r Release) corednsBuild() *GoBuild {
	return &GoBuild{
		Name: r.buildName("coredns"), GoDirective: r.CoreDNSGo,
		Require: []string{"github.com/coredns/coredns " + r.CoreDNS},
		Mains: map[string]string{"coredns": `// CoreDNS with upstream's plugin set, as its own main does.
package main

import (
	_ "github.com/coredns/coredns/core/plugin"
	"github.com/coredns/coredns/coremain"
)

func main() { coremain.Run() }
`},
		Packages: []string{"./coredns"},
		LDFlags:  "-s -w",
	}
}

var metallbBuild = &GoBuild{
	Name: "metallb", GoDirective: "1.24.0",
	Require:  []string{"go.universe.tf/metallb " + MetalLBVersion},
	Packages: []string{"go.universe.tf/metallb/controller", "go.universe.tf/metallb/speaker"},
	LDFlags:  "-s -w",
}

var traefikBuild = &GoBuild{
	Name: "traefik", GoDirective: "1.25.0",
	Require: []string{"github.com/traefik/traefik/v3 " + TraefikVersion},
	// The three replace lines of traefik's own go.mod (containous forks).
	Replace: []string{
		"github.com/abbot/go-http-auth => github.com/containous/go-http-auth v0.4.1-0.20200324110947-a37a7636d23e",
		"github.com/gorilla/mux => github.com/containous/mux v0.0.0-20250523120546-41b6ec3aed59",
		"github.com/mailgun/minheap => github.com/containous/minheap v0.0.0-20190809180810-6e71eb837595",
	},
	Packages: []string{"github.com/traefik/traefik/v3/cmd/traefik"},
	LDFlags:  "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=" + TraefikVersion,
}

var agentBuild = &GoBuild{Name: "agent", Local: true, Packages: []string{"./cmd/rackdrill-agent"}, LDFlags: "-s -w"}

// The CNI is Debian's ptp and host-local plugins (in the rootfs), the
// fallback the architecture names: Flannel (github.com/flannel-io/flannel)
// cannot be built here, since its go.mod requires the Tencent Cloud SDK modules
// and the module proxy refuses every version of them.

// iptablesFiles are what kube-proxy needs to program iptables
// through nftables, as the host does: the multi-call binary, its names, and the
// extensions it loads at run time (not in ldd's list).
var iptablesFiles = []string{"/usr/sbin/xtables-nft-multi", "/usr/sbin/iptables", "/usr/sbin/iptables-save",
	"/usr/sbin/iptables-restore", "/usr/sbin/ip6tables", "/usr/sbin/ip6tables-save", "/usr/sbin/ip6tables-restore",
	"/usr/lib/x86_64-linux-gnu/xtables", "/usr/sbin/conntrack", "/usr/sbin/ip"}

// frpBuild is FRP's frps and frpc. Its module is not on every Go module
// proxy (not on the one these machines reach): GOPROXY then names a file
// proxy that serves it, before the usual one.
var frpBuild = &GoBuild{
	Name: "frp", GoDirective: "1.25.0",
	Require: []string{"github.com/fatedier/frp " + FRPVersion},
	// The replace line of FRP's own go.mod (its yamux fork).
	Replace:  []string{"github.com/hashicorp/yamux => github.com/fatedier/yamux v0.0.0-20250825093530-d0154be01cd6"},
	Packages: []string{"github.com/fatedier/frp/cmd/frps", "github.com/fatedier/frp/cmd/frpc"},
	Tags:     "noweb", LDFlags: "-s -w",
	Hint: "FRP " + FRPVersion + " is not on this machine's Go module proxy: put a proxy that serves it first in GOPROXY, " +
		"e.g. GOPROXY=file:///path/to/goproxy,$(go env GOPROXY) (docs/lab.md, \"FRP\")",
}

// catalog is every image of the lab.
var catalog = map[string]*Image{}

func add(img *Image) { catalog[img.Name] = img }

func init() {
	add(&Image{Name: "rootfs", Summary: "Debian " + debianSuite + " by debootstrap, every package of the lab's machines",
		Recipes: []string{"rootfs"}, build: buildRootfs})
	add(&Image{Name: "metallb-controller", Summary: "MetalLB " + MetalLBVersion + " controller",
		Aliases: []string{"quay.io/metallb/controller:" + MetalLBVersion}, Go: metallbBuild,
		Bins: map[string]string{"controller": "/controller"}, Entrypoint: []string{"/controller"}, Preload: true, build: buildScratch})
	add(&Image{Name: "metallb-speaker", Summary: "MetalLB " + MetalLBVersion + " speaker",
		Aliases: []string{"quay.io/metallb/speaker:" + MetalLBVersion}, Go: metallbBuild,
		Bins: map[string]string{"speaker": "/speaker"}, Entrypoint: []string{"/speaker"}, Preload: true, build: buildScratch})
	add(&Image{Name: "traefik", Summary: "Traefik " + TraefikVersion + " ingress controller",
		Aliases: []string{"docker.io/library/traefik:" + TraefikVersion}, Go: traefikBuild,
		Bins: map[string]string{"traefik": "/traefik"}, Entrypoint: []string{"/traefik"}, Preload: true, build: buildScratch})
	add(&Image{Name: "agent", Summary: "rackdrill-agent: the probes' workload and demo app",
		Aliases: []string{"rackdrill.dev/agent:latest"}, Go: agentBuild,
		Sources: []string{"cmd/rackdrill-agent", "harness/probe/agent", "go.mod"},
		Bins:    map[string]string{"rackdrill-agent": "/rackdrill-agent"}, Entrypoint: []string{"/rackdrill-agent"}, Preload: true, build: buildScratch})
	add(&Image{Name: "tunnel-client", Summary: "OpenSSH client from Debian: the lab's reverse tunnel client",
		Aliases: []string{"rackdrill.dev/tunnel-client:latest"}, Deps: []string{"rootfs"},
		Collect:    []string{"/usr/bin/ssh", "/etc/ssh/ssh_config", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf"},
		Entrypoint: []string{"/usr/bin/ssh"}, Preload: true, build: buildScratch})
	add(&Image{Name: "frpc", Summary: "FRP " + FRPVersion + " client (frpc), built with the noweb tag",
		Aliases: []string{"docker.io/fatedier/frpc:" + FRPVersion}, Go: frpBuild,
		Bins: map[string]string{"frpc": "/frpc"}, Entrypoint: []string{"/frpc"}, OnDemand: true, build: buildScratch})
	for _, img := range catalog {
		if img.Preload {
			sharedPreloads = append(sharedPreloads, img.Name)
		}
	}
	sort.Strings(sharedPreloads)
	addRelease(DefaultRelease, "")
	add(&Image{Name: "k3s", Summary: "K3s " + K3sVersion + " (commit " + K3sCommit + "), runc and the containerd shim, from source, on the node image",
		Aliases: []string{"rackdrill.dev/k3s:" + strings.ReplaceAll(K3sVersion, "+", "-")}, Deps: []string{"node"}, Recipes: []string{"k3s"}, OnDemand: true,
		// The recipe is code: its file is part of the image's tag.
		Sources: []string{"harness/lab/k3s.go"}, build: buildK3s})
	for _, v := range ReleaseVersions() {
		if v != DefaultRelease.Kubernetes {
			addRelease(Releases[v], v+"/")
		}
	}
}

// sharedPreloads are the images every node image carries whatever its
// release: MetalLB, Traefik, the agent, the tunnel client.
var sharedPreloads []string

// addRelease adds the images of release r named with prefix: the lab's own
// release without one (preloaded into the node image), an upgrade's target
// with its version (v1.34.4/kube-apiserver), built on demand, and its upgrade
// kit (v1.34.4/kit): kubeadm, kubelet, kubectl and etcdctl of the release and
// its images, what a machine is upgraded with. Each release has its node
// image (node, v1.34.4/node): the lab may start at any of them.
func addRelease(r Release, prefix string) {
	kube, etcd, coredns := r.kubernetesBuild(), r.etcdBuild(), r.corednsBuild()
	if prefix == "" {
		kube, etcd, coredns = kubernetesBuild, etcdBuild, corednsBuild
	}
	target := prefix != ""
	var names []string
	img := func(i *Image) {
		i.Name = prefix + i.Name
		i.release = r
		i.Preload, i.OnDemand = !target, target
		names = append(names, i.Name)
		add(i)
	}
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		img(&Image{Name: c, Summary: "FROM scratch, built from k8s.io/kubernetes " + r.Kubernetes,
			Aliases: []string{"registry.k8s.io/" + c + ":" + r.Kubernetes}, Go: kube,
			Bins: map[string]string{c: "/usr/local/bin/" + c}, build: buildScratch})
	}
	img(&Image{Name: "kube-proxy", Summary: "kube-proxy with iptables (nft) and conntrack",
		Aliases: []string{"registry.k8s.io/kube-proxy:" + r.Kubernetes}, Go: kube, Deps: []string{"rootfs"},
		Bins: map[string]string{"kube-proxy": "/usr/local/bin/kube-proxy"}, Collect: iptablesFiles, build: buildScratch})
	img(&Image{Name: "etcd", Summary: "etcd " + r.Etcd + " and etcdctl from go.etcd.io",
		Aliases: []string{"registry.k8s.io/etcd:" + r.EtcdTag()}, Go: etcd,
		Bins: map[string]string{"etcd": "/usr/local/bin/etcd", "etcdctl": "/usr/local/bin/etcdctl"}, build: buildScratch})
	img(&Image{Name: "coredns", Summary: "CoreDNS " + r.CoreDNS,
		Aliases: []string{"registry.k8s.io/coredns/coredns:" + r.CoreDNS}, Go: coredns,
		Bins: map[string]string{"coredns": "/coredns"}, Entrypoint: []string{"/coredns"}, build: buildScratch})
	img(&Image{Name: "pause", Summary: "pause " + r.Pause + ", static gcc build of the kubernetes module's pause.c",
		Aliases:    []string{"registry.k8s.io/pause:" + r.Pause},
		Entrypoint: []string{"/pause"}, build: buildPause})
	preloads := append(slices.Clone(sharedPreloads), names...)
	sort.Strings(preloads)
	add(&Image{Name: prefix + "node", Summary: "systemd, containerd, kubelet/kubeadm/kubectl " + r.Kubernetes + ", every image preloaded",
		Aliases: []string{"rackdrill.dev/node:" + r.Kubernetes}, Recipes: []string{"node"}, Go: kube,
		Deps: append([]string{"rootfs"}, preloads...), OnDemand: target, release: r, build: buildNode})
	if !target {
		return
	}
	add(&Image{Name: prefix + "kit", Summary: "kubeadm, kubelet, kubectl and etcdctl " + r.Kubernetes + " and the release's images: a machine's upgrade",
		Go: kube, Deps: names, OnDemand: true, release: r, build: buildKit})
}

// KitImages lists the images in the kit of release version (by their file
// names in the kit's images folder, without .tar), or an error naming the
// releases that have a kit.
func KitImages(version string) ([]string, error) {
	kit, ok := catalog[version+"/kit"]
	if !ok {
		var have []string
		for _, v := range ReleaseVersions() {
			if _, ok := catalog[v+"/kit"]; ok {
				have = append(have, v)
			}
		}
		return nil, fmt.Errorf("no upgrade kit for %s (kits: %s)", version, strings.Join(have, ", "))
	}
	var out []string
	for _, d := range kit.Deps {
		out = append(out, path.Base(d))
	}
	sort.Strings(out)
	return out, nil
}

// Names lists the lab's images in build order.
func Names() []string {
	order, _ := buildOrder(nil)
	var out []string
	for _, img := range order {
		out = append(out, img.Name)
	}
	return out
}

// Alias is the name the cluster knows image name by (what the node image
// preloads into containerd, or what Up imports there for an image built on
// demand), or "" for an image the cluster does not run.
func Alias(name string) string {
	if img, ok := catalog[name]; ok && (img.Preload || img.OnDemand) && len(img.Aliases) > 0 {
		return img.Aliases[0]
	}
	return ""
}

// Preloaded lists the images the node image carries, by the names the cluster
// knows them by.
func Preloaded() []string {
	var out []string
	for _, img := range catalog {
		if img.Preload {
			out = append(out, img.Aliases...)
		}
	}
	sort.Strings(out)
	return out
}

// buildOrder is names and their dependencies, dependencies first; images that
// share a Go build are kept together so the build runs once while its outputs
// are fresh in the cache.
func buildOrder(names []string) ([]*Image, error) {
	if len(names) == 0 {
		for n, img := range catalog {
			if !img.OnDemand {
				names = append(names, n)
			}
		}
	}
	sort.Strings(names)
	var out []*Image
	seen := map[string]bool{}
	var visit func(string) error
	visit = func(n string) error {
		img, ok := catalog[n]
		if !ok {
			var known []string
			for k := range catalog {
				known = append(known, k)
			}
			sort.Strings(known)
			return fmt.Errorf("unknown lab image %q (known: %s)", n, strings.Join(known, ", "))
		}
		if seen[n] {
			return nil
		}
		seen[n] = true
		for _, d := range img.Deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		out = append(out, img)
		return nil
	}
	for _, n := range names {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return out, nil
}
