package lab

// How each kind of image of the catalog is built (a rootfs, a scratch image of
// Go binaries, the pause image, the node image), and the etcd tools the harness
// runs from this machine.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"text/template"
	"time"

	"rackdrill.dev/rackdrill/harness/exec"
)

// buildRootfs debootstraps Debian with every package of the lab, prepares it
// for containers and imports it.
func buildRootfs(ctx context.Context, b *Builder, img *Image, tag string) error {
	pkgs, err := recipes.ReadFile("recipes/rootfs/packages.txt")
	if err != nil {
		return err
	}
	var include []string
	for _, l := range strings.Split(string(pkgs), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			include = append(include, l)
		}
	}
	dir := filepath.Join(b.CacheDir, "rootfs")
	if err := os.RemoveAll(dir); err != nil {
		return &StepError{Image: img.Name, Step: "clean " + dir, Err: err}
	}
	if _, err := exec.Output(b.cmdr.Command(ctx, "which", "debootstrap")); err != nil {
		return &StepError{Image: img.Name, Step: "debootstrap", Err: fmt.Errorf("debootstrap is not installed (apt-get install debootstrap, or `make setup`)")}
	}
	if err := exec.Run(b.cmdr.Command(ctx, "debootstrap", "--variant=minbase", "--include="+strings.Join(include, ","),
		debianSuite, dir, debianMirror)); err != nil {
		return &StepError{Image: img.Name, Step: "debootstrap " + debianSuite, Err: err}
	}
	setup, _ := recipes.ReadFile("recipes/rootfs/setup.sh")
	if err := os.WriteFile(filepath.Join(dir, "tmp", "rackdrill-setup.sh"), setup, 0o755); err != nil {
		return err
	}
	if err := exec.Run(b.cmdr.Command(ctx, "chroot", dir, "/bin/sh", "/tmp/rackdrill-setup.sh")); err != nil {
		return &StepError{Image: img.Name, Step: "prepare the rootfs (recipes/rootfs/setup.sh)", Err: err}
	}
	_ = os.Remove(filepath.Join(dir, "tmp", "rackdrill-setup.sh"))
	h, _ := b.hash(img.Name)
	tarCmd := fmt.Sprintf("tar -C %q --numeric-owner -c . | docker import --change 'LABEL %s=rootfs' --change 'LABEL %s=%s' - %s",
		dir, LabelImage, LabelInputs, h, tag)
	if err := exec.Run(b.cmdr.Command(ctx, "sh", "-c", tarCmd)); err != nil {
		return &StepError{Image: img.Name, Step: "docker import", Err: err}
	}
	return os.RemoveAll(dir)
}

// scratchTemplate makes a FROM scratch image. Files collected from the rootfs
// are copied dereferenced (a multi-call binary like xtables-nft-multi answers to
// the name it is called by), with every library ldd finds for them and the
// loader's cache.
var scratchTemplate = template.Must(template.New("scratch").Parse(`{{if .Collect}}FROM {{.Rootfs}} AS os
RUN set -e; mkdir -p /out; \
    for f in {{.Collect}} /etc/ld.so.cache; do cp -aL --parents "$f" /out/; done; \
    find /out -type f -exec sh -c 'ldd "$1" 2>/dev/null || true' _ {} \; \
      | grep -o '/[^ ]*' | sort -u | while read -r lib; do cp -aL --parents "$lib" /out/; done
FROM scratch
COPY --from=os /out/ /
{{else}}FROM scratch
{{end}}COPY bin/ /
ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
{{if .Entrypoint}}ENTRYPOINT {{.Entrypoint}}
{{end}}`))

// buildScratch makes a FROM scratch image of the image's Go binaries and the
// rootfs files it collects.
func buildScratch(ctx context.Context, b *Builder, img *Image, tag string) error {
	dir, err := b.workDir(img.Name)
	if err != nil {
		return err
	}
	if img.Go != nil {
		bins, err := b.binaries(ctx, img.Name, img.Go)
		if err != nil {
			return err
		}
		for src, dst := range img.Bins {
			if err := copyFile(filepath.Join(bins, src), filepath.Join(dir, "bin", dst), 0o755); err != nil {
				return &StepError{Image: img.Name, Step: "stage " + src, Err: err}
			}
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		return err
	}
	data := map[string]string{"Collect": strings.Join(img.Collect, " ")}
	if len(img.Collect) > 0 {
		if data["Rootfs"], err = b.Tag("rootfs"); err != nil {
			return err
		}
	}
	if len(img.Entrypoint) > 0 {
		ep, _ := json.Marshal(img.Entrypoint)
		data["Entrypoint"] = string(ep)
	}
	f, err := os.Create(filepath.Join(dir, "Dockerfile"))
	if err != nil {
		return err
	}
	if err := scratchTemplate.Execute(f, data); err != nil {
		f.Close()
		return err
	}
	f.Close()
	return b.dockerBuild(ctx, img, dir, tag)
}

// buildPause compiles pause.c of the kubernetes module statically.
func buildPause(ctx context.Context, b *Builder, img *Image, tag string) error {
	src, err := b.moduleDir(ctx, "k8s.io/kubernetes@"+img.release.Kubernetes)
	if err != nil {
		return &StepError{Image: img.Name, Step: "download k8s.io/kubernetes", Err: err}
	}
	dir, err := b.workDir(img.Name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		return err
	}
	if err := exec.Run(b.cmdr.Command(ctx, "gcc", "-Os", "-Wall", "-Werror", "-static",
		"-DVERSION=v"+img.release.Pause+"-rackdrill", "-o", filepath.Join(dir, "bin", "pause"),
		filepath.Join(src, "build/pause/linux/pause.c"))); err != nil {
		return &StepError{Image: img.Name, Step: "gcc -static pause.c (needs gcc and libc6-dev)", Err: err}
	}
	df := "FROM scratch\nCOPY bin/pause /pause\nUSER 65535:65535\nENTRYPOINT [\"/pause\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return err
	}
	return b.dockerBuild(ctx, img, dir, tag)
}

// buildNode makes the machine image: the rootfs, the node binaries, the node's
// files, and a docker save of every preloaded image.
func buildNode(ctx context.Context, b *Builder, img *Image, tag string) error {
	dir, err := b.workDir(img.Name)
	if err != nil {
		return err
	}
	if err := copyRecipe("node", dir); err != nil {
		return &StepError{Image: img.Name, Step: "write recipe", Err: err}
	}
	if err := setSandboxImage(filepath.Join(dir, "files", "etc", "containerd", "config.toml"), "registry.k8s.io/pause:"+img.release.Pause); err != nil {
		return &StepError{Image: img.Name, Step: "write recipe", Err: err}
	}
	bins, err := b.binaries(ctx, img.Name, img.Go)
	if err != nil {
		return err
	}
	etcdBins, err := b.binaries(ctx, img.Name, img.release.etcdBuild())
	if err != nil {
		return err
	}
	for _, f := range []struct{ dir, name string }{{bins, "kubelet"}, {bins, "kubeadm"}, {bins, "kubectl"}, {etcdBins, "etcdctl"}} {
		if err := copyFile(filepath.Join(f.dir, f.name), filepath.Join(dir, "bin", f.name), 0o755); err != nil {
			return &StepError{Image: img.Name, Step: "stage " + f.name, Err: err}
		}
	}
	images := filepath.Join(dir, "images")
	if err := os.MkdirAll(images, 0o755); err != nil {
		return err
	}
	var inputs, list []string
	for _, d := range img.Deps {
		dep := catalog[d]
		if len(dep.Aliases) == 0 { // the rootfs it is made from
			continue
		}
		depTag, _ := b.Tag(d)
		inputs = append(inputs, depTag)
		list = append(list, dep.Aliases...)
		t0 := time.Now()
		if err := b.saveImage(ctx, d, filepath.Join(images, path.Base(d)+".tar")); err != nil {
			return &StepError{Image: img.Name, Step: "docker save " + d, Err: err}
		}
		fmt.Fprintf(b.Out, "         node: saved %s (%s)\n", d, time.Since(t0).Round(time.Millisecond))
	}
	sort.Strings(list)
	if err := os.WriteFile(filepath.Join(images, "inputs"), []byte(strings.Join(inputs, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(images, "images.txt"), []byte(strings.Join(list, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	rootfs, err := b.Tag("rootfs")
	if err != nil {
		return err
	}
	tpl, err := template.ParseFS(recipes, "recipes/node/Dockerfile")
	if err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "Dockerfile"))
	if err != nil {
		return err
	}
	if err := tpl.Execute(f, map[string]string{"Rootfs": rootfs}); err != nil {
		f.Close()
		return err
	}
	f.Close()
	return b.dockerBuild(ctx, img, dir, tag)
}

// buildKit makes a release's upgrade kit: what a machine is upgraded with
// (kubeadm, kubelet, kubectl, etcdctl in /kit/bin) and a docker save of each
// image of the release in /kit/images, to import into the machine's containerd.
func buildKit(ctx context.Context, b *Builder, img *Image, tag string) error {
	dir, err := b.workDir(img.Name)
	if err != nil {
		return err
	}
	bins, err := b.binaries(ctx, img.Name, img.Go)
	if err != nil {
		return err
	}
	etcdBins, err := b.binaries(ctx, img.Name, img.release.etcdBuild())
	if err != nil {
		return err
	}
	for _, f := range []struct{ dir, name string }{{bins, "kubelet"}, {bins, "kubeadm"}, {bins, "kubectl"}, {etcdBins, "etcdctl"}} {
		if err := copyFile(filepath.Join(f.dir, f.name), filepath.Join(dir, "bin", f.name), 0o755); err != nil {
			return &StepError{Image: img.Name, Step: "stage " + f.name, Err: err}
		}
	}
	images := filepath.Join(dir, "images")
	if err := os.MkdirAll(images, 0o755); err != nil {
		return err
	}
	var list []string
	for _, d := range img.Deps {
		dep := catalog[d]
		list = append(list, dep.Aliases...)
		if err := b.saveImage(ctx, d, filepath.Join(images, kitImageFile(d))); err != nil {
			return &StepError{Image: img.Name, Step: "docker save " + d, Err: err}
		}
	}
	sort.Strings(list)
	if err := os.WriteFile(filepath.Join(images, "images.txt"), []byte(strings.Join(list, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(KitDockerfile()), 0o644); err != nil {
		return err
	}
	return b.dockerBuild(ctx, img, dir, tag)
}

// kitImageFile is the file of the kit's images folder that holds image name
// (a name KitImages lists, or the image's own, v1.34.4/coredns).
func kitImageFile(name string) string { return path.Base(name) + ".tar" }

// KitImagePath is where the kit image holds image name, one of KitImages.
func KitImagePath(name string) string { return path.Join(KitRoot, "images", kitImageFile(name)) }

// saveImage writes image name to file as `docker save` does, under its
// aliases. Images of two releases may share an alias (etcd 3.5.24-0 of
// v1.33.6 and of v1.33.13): the alias is pointed at this image first.
func (b *Builder) saveImage(ctx context.Context, name, file string) error {
	tag, err := b.Tag(name)
	if err != nil {
		return err
	}
	aliases := catalog[name].Aliases
	for _, alias := range aliases {
		if err := b.docker(ctx, "tag", tag, alias); err != nil {
			return err
		}
	}
	return b.docker(ctx, append([]string{"save", "-o", file}, aliases...)...)
}

// sandboxImageRE is the sandbox image line of the node's containerd config.
var sandboxImageRE = regexp.MustCompile(`(?m)^(\s*sandbox_image\s*=\s*)"[^"]*"`)

// setSandboxImage makes the pause image of containerd config file image, the
// pause image of the node's release (the recipe names the default release's).
func setSandboxImage(file, image string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if !sandboxImageRE.Match(data) {
		return fmt.Errorf("%s: no sandbox_image line", file)
	}
	return os.WriteFile(file, sandboxImageRE.ReplaceAll(data, []byte(`${1}"`+image+`"`)), 0o644)
}

// KitRoot is the folder of a kit image that holds the kit: bin/ and images/.
const KitRoot = "/kit"

// KitDockerfile is the kit image's Dockerfile. CMD only so that `docker
// create` accepts the image: the kit is copied out of it, never run.
func KitDockerfile() string {
	return "FROM scratch\nCOPY bin " + KitRoot + "/bin\nCOPY images " + KitRoot + "/images\nCMD [\"" + KitRoot + "/bin/kubectl\"]\n"
}

// moduleDir downloads a module version and returns its folder in the cache.
func (b *Builder) moduleDir(ctx context.Context, modVersion string) (string, error) {
	return ModuleDir(ctx, modVersion)
}

// ModuleDir downloads a module version through the Go module proxy (a no-op
// when it is in the module cache) and returns its folder: the lab reads
// upstream's own manifests (MetalLB's) from there.
func ModuleDir(ctx context.Context, modVersion string) (string, error) {
	out, err := exec.Output(exec.Local{}.Command(ctx, "go", "mod", "download", "-json", modVersion).SetDir(os.TempDir()))
	var m struct{ Dir, Error string }
	// On a refusal the go command says why in the JSON, and exits 1.
	if jerr := json.Unmarshal(out, &m); jerr == nil && m.Error != "" {
		return "", fmt.Errorf("%s", m.Error)
	}
	if err != nil {
		return "", err
	}
	return m.Dir, nil
}

// moduleGoMod resolves module@version through the Go module proxy without its
// source (`go list -m`): the path of its go.mod, or the proxy's refusal.
func moduleGoMod(ctx context.Context, modVersion string) (string, error) {
	out, err := exec.Output(exec.Local{}.Command(ctx, "go", "list", "-m", "-e", "-json", modVersion).SetDir(os.TempDir()))
	if err != nil {
		return "", err
	}
	var m struct {
		GoMod string
		Error *struct{ Err string }
	}
	if err := json.Unmarshal(out, &m); err != nil {
		return "", err
	}
	if m.Error != nil {
		return "", fmt.Errorf("%s", m.Error.Err)
	}
	if m.GoMod == "" {
		return "", fmt.Errorf("%s: no go.mod", modVersion)
	}
	return m.GoMod, nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, mode)
}

// etcdutlBuild is etcdutl for this machine: preflight verifies the etcd
// snapshot it copies into the artifacts folder with it (`snapshot status`).
// The release's etcdutl module goes with the etcdctl of the node image.
var etcdutlBuild = &GoBuild{
	Name: "etcdutl", GoDirective: "1.24",
	Require:  []string{"go.etcd.io/etcd/etcdutl/v3 " + etcdctlVersion},
	Packages: []string{"go.etcd.io/etcd/etcdutl/v3"},
	LDFlags:  "-s -w",
}

// Etcdctl returns the path of the etcdctl the node image carries (the etcd
// build's), built from the Go module proxy on first use and cached: rackdrill
// puts it on K3s servers, which have none.
func (b *Builder) Etcdctl(ctx context.Context) (string, error) {
	return b.EtcdctlFor(ctx, runtime.GOARCH)
}

// EtcdctlFor is Etcdctl cross-compiled for arch (a server's architecture, as
// Kubernetes names it).
func (b *Builder) EtcdctlFor(ctx context.Context, arch string) (string, error) {
	if _, err := Platform(arch); err != nil {
		return "", err
	}
	dir, err := b.binariesFor(ctx, "etcd", etcdBuild, arch)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "etcdctl"), nil
}

// Etcdutl returns the path of etcdutl, built from the Go module proxy on first
// use and cached by its inputs' hash.
func (b *Builder) Etcdutl(ctx context.Context) (string, error) {
	dir, err := b.binaries(ctx, "etcdutl", etcdutlBuild)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "etcdutl"), nil
}

// FRPS returns the path of frps (the frpc image's build), built on first use
// and cached: the lab puts it on the VPS, as a rack's owner installs it there.
func (b *Builder) FRPS(ctx context.Context) (string, error) {
	dir, err := b.binaries(ctx, "frpc", frpBuild)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "frps"), nil
}
