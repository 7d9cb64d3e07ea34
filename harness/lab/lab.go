// Package lab builds every image of the offline lab from the Go module proxy and
// Debian's packages: nothing is pulled. Recipes are embedded (recipes/), each
// image is tagged by a hash of its inputs (recipe, versions, sources, the hashes
// of the images it is made of), and an image whose tag exists is never rebuilt.
// Go programs are built on this machine with its Go toolchain, so the Go build
// cache is shared between builds and with the user's own.
package lab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"rackdrill.dev/rackdrill/harness/exec"
)

//go:embed recipes
var recipes embed.FS

// builderVersion is part of every image's hash: bump it when the way images are
// made (templates, steps) changes, so that every image is rebuilt.
const builderVersion = 1

// Repository of every lab image's content tag.
const Repository = "rackdrill.dev/lab"

// LabelImage marks every image the lab builds; LabelInputs holds its input hash.
const (
	LabelImage  = "rackdrill.dev/image"
	LabelInputs = "rackdrill.dev/inputs"
)

// Builder builds lab images.
type Builder struct {
	// CacheDir holds build modules, Go outputs and the rootfs (default
	// $XDG_CACHE_HOME/rackdrill or ~/.cache/rackdrill).
	CacheDir string
	// RepoRoot is this repository, for the images of its own programs.
	RepoRoot string
	// Out receives one progress line per step.
	Out  io.Writer
	cmdr exec.Cmder

	mu     sync.Mutex
	hashes map[string]string
	goVer  string
}

// NewRepoBuilder is the builder of the repository rackdrill runs from
// (RepoRoot), printing its progress to out.
func NewRepoBuilder(out io.Writer) (*Builder, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	return NewBuilder(root, out)
}

// NewBuilder returns a builder for the repository at repoRoot.
func NewBuilder(repoRoot string, out io.Writer) (*Builder, error) {
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("find a cache folder: %w", err)
		}
		cache = filepath.Join(home, ".cache")
	}
	return &Builder{CacheDir: filepath.Join(cache, "rackdrill"), RepoRoot: repoRoot, Out: out,
		cmdr: exec.Local{}, hashes: map[string]string{}}, nil
}

// Result is what happened to one image.
type Result struct {
	Image  string
	Tag    string
	Cached bool
	Took   time.Duration
}

// StepError is a failed build: the image, the step and why.
type StepError struct {
	Image string
	Step  string
	Err   error
}

func (e *StepError) Error() string { return fmt.Sprintf("image %s: %s: %v", e.Image, e.Step, e.Err) }
func (e *StepError) Unwrap() error { return e.Err }

// Build builds the named images (every image when names is empty) and what they
// are made of, in dependency order, skipping those whose tag exists.
func (b *Builder) Build(ctx context.Context, names ...string) ([]Result, error) {
	if err := b.preflight(ctx); err != nil {
		return nil, err
	}
	// One build at a time per cache: a second waits (two `rackdrill images`,
	// or tests of several packages building the lab at once).
	lock, err := os.OpenFile(filepath.Join(b.CacheDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		fmt.Fprintf(b.Out, "another build of the lab's images is running; waiting for it\n")
		if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
			return nil, err
		}
	}
	order, err := buildOrder(names)
	if err != nil {
		return nil, err
	}
	var results []Result
	start := time.Now()
	for i, img := range order {
		tag, err := b.Tag(img.Name)
		if err != nil {
			return results, err
		}
		prefix := fmt.Sprintf("[%2d/%d] %-24s", i+1, len(order), img.Name)
		if b.exists(ctx, tag) {
			fmt.Fprintf(b.Out, "%s cached  %s\n", prefix, tag)
			results = append(results, Result{Image: img.Name, Tag: tag, Cached: true})
			continue
		}
		fmt.Fprintf(b.Out, "%s building (%s)\n", prefix, img.Summary)
		t0 := time.Now()
		stopBeat := b.heartbeat(prefix, t0)
		err = img.build(ctx, b, img, tag)
		stopBeat()
		if err != nil {
			var se *StepError
			if errors.As(err, &se) {
				return results, err
			}
			return results, &StepError{Image: img.Name, Step: "build", Err: err}
		}
		for _, alias := range img.Aliases {
			if err := b.docker(ctx, "tag", tag, alias); err != nil {
				return results, &StepError{Image: img.Name, Step: "tag " + alias, Err: err}
			}
		}
		took := time.Since(t0)
		fmt.Fprintf(b.Out, "%s built in %s  %s\n", prefix, took.Round(time.Second), tag)
		results = append(results, Result{Image: img.Name, Tag: tag, Took: took})
	}
	fmt.Fprintf(b.Out, "images: %d built, %d cached, in %s\n", countBuilt(results), len(results)-countBuilt(results), time.Since(start).Round(time.Second))
	return results, nil
}

// heartbeat says every minute that a long step is still running.
func (b *Builder) heartbeat(prefix string, t0 time.Time) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(b.Out, "%s still building (%s)\n", prefix, time.Since(t0).Round(time.Second))
			}
		}
	}()
	return func() { close(done) }
}

func countBuilt(rs []Result) int {
	n := 0
	for _, r := range rs {
		if !r.Cached {
			n++
		}
	}
	return n
}

// preflight fails early, and clearly, on a machine that cannot build.
func (b *Builder) preflight(ctx context.Context) error {
	if err := exec.Run(b.cmdr.Command(ctx, "docker", "info")); err != nil {
		return fmt.Errorf("docker does not answer (run `make setup`): %w", err)
	}
	if _, err := b.goVersion(); err != nil {
		return err
	}
	return os.MkdirAll(b.CacheDir, 0o755)
}

// goVersion is the Go toolchain's version: part of the hash of every image of
// Go programs.
func (b *Builder) goVersion() (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.goVer != "" {
		return b.goVer, nil
	}
	out, err := exec.Output(b.cmdr.Command(context.Background(), "go", "env", "GOVERSION"))
	if err != nil {
		return "", fmt.Errorf("Go is needed to build the lab's images and what rackdrill puts on a rack (the probe agent, etcdctl), and `go env GOVERSION` failed: %w", err)
	}
	b.goVer = strings.TrimSpace(string(out))
	return b.goVer, nil
}

// Tag is the content tag of image name: Repository/name:<hash of its inputs>.
func (b *Builder) Tag(name string) (string, error) {
	h, err := b.hash(name)
	if err != nil {
		return "", err
	}
	return Repository + "/" + name + ":" + h[:16], nil
}

// hash is the hash of everything image name is made of.
func (b *Builder) hash(name string) (string, error) {
	b.mu.Lock()
	if h, ok := b.hashes[name]; ok {
		b.mu.Unlock()
		return h, nil
	}
	b.mu.Unlock()
	img, ok := catalog[name]
	if !ok {
		return "", fmt.Errorf("unknown lab image %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	hw := sha256.New()
	fmt.Fprintf(hw, "builder %d\nimage %s\nsummary %s\naliases %v\nentrypoint %q\ncollect %q\n",
		builderVersion, img.Name, img.Summary, img.Aliases, img.Entrypoint, img.Collect)
	for _, k := range sortedKeys(img.Bins) {
		fmt.Fprintf(hw, "bin %s %s\n", k, img.Bins[k])
	}
	for _, dir := range img.Recipes {
		if err := hashTree(hw, dir); err != nil {
			return "", &StepError{Image: name, Step: "hash recipe " + dir, Err: err}
		}
	}
	if img.Go != nil {
		goVer, err := b.goVersion()
		if err != nil {
			return "", err
		}
		fmt.Fprintf(hw, "go %s\n%s\n", goVer, img.Go.fingerprint())
	}
	for _, src := range img.Sources {
		if err := hashFiles(hw, filepath.Join(b.RepoRoot, src)); err != nil {
			return "", &StepError{Image: name, Step: "hash sources " + src, Err: err}
		}
	}
	for _, dep := range img.Deps {
		h, err := b.hash(dep)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(hw, "dep %s %s\n", dep, h)
	}
	h := hex.EncodeToString(hw.Sum(nil))
	b.mu.Lock()
	b.hashes[name] = h
	b.mu.Unlock()
	return h, nil
}

func hashTree(w io.Writer, dir string) error {
	return fs.WalkDir(recipes, "recipes/"+dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := recipes.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "file %s %d\n", p, len(data))
		_, err = w.Write(data)
		return err
	})
}

// hashFiles hashes the Go sources under root (this repository's own programs).
func hashFiles(w io.Writer, root string) error {
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") || filepath.Base(p) == "go.mod" || filepath.Base(p) == "go.sum") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, f)
		fmt.Fprintf(w, "src %s %d\n", rel, len(data))
		_, _ = w.Write(data)
	}
	return nil
}

func (b *Builder) exists(ctx context.Context, tag string) bool {
	return exec.Run(b.cmdr.Command(ctx, "docker", "image", "inspect", "--format", "{{.Id}}", tag)) == nil
}

func (b *Builder) docker(ctx context.Context, args ...string) error {
	return exec.Run(b.cmdr.Command(ctx, "docker", args...))
}

// dockerBuild builds the context folder dir as tag, labelled with its inputs.
func (b *Builder) dockerBuild(ctx context.Context, img *Image, dir, tag string) error {
	h, _ := b.hash(img.Name)
	var out bytes.Buffer
	cmd := b.cmdr.Command(ctx, "docker", "build", "--quiet", "--network", "none",
		"--label", LabelImage+"="+img.Name, "--label", LabelInputs+"="+h, "-t", tag, dir)
	cmd.SetStdout(&out).SetStderr(&out)
	if err := cmd.Run(); err != nil {
		return &StepError{Image: img.Name, Step: "docker build", Err: fmt.Errorf("%w\n%s", err, tail(out.String(), 3000))}
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// workDir is a fresh folder for one build of img.
func (b *Builder) workDir(name string) (string, error) {
	dir := filepath.Join(b.CacheDir, "work", name)
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	return dir, os.MkdirAll(dir, 0o755)
}

// copyRecipe writes the embedded recipe dir into dst.
func copyRecipe(dir, dst string) error {
	root := "recipes/" + dir
	return fs.WalkDir(recipes, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := recipes.ReadFile(p)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.Contains(p, "/bin/") || strings.HasSuffix(p, ".sh") {
			mode = 0o755
		}
		return os.WriteFile(target, data, mode)
	})
}

// ContentTag is the content tag of image name for this repository: what `rackdrill
// images` builds it as, and what a provider runs.
func ContentTag(name string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	b, err := NewBuilder(root, io.Discard)
	if err != nil {
		return "", err
	}
	return b.Tag(name)
}

// RepoRoot is this repository: the folder above the working directory whose
// go.mod is rackdrill's. The lab builds the repository's own programs from it.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	wd := dir
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(data, []byte("module rackdrill.dev/rackdrill\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("the lab is built from rackdrill's source: run this from a clone of rackdrill's repository (no go.mod of rackdrill.dev/rackdrill in %s or above it); validate, plan, run, preflight and recover on an ssh rack work from anywhere", wd)
		}
		dir = parent
	}
}
