package lab

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// AgentRepository names the agent image a real rack runs: its tag is the hash
// of the agent's sources and architectures, so a rack that has it loaded has
// exactly this build.
const AgentRepository = "rackdrill.dev/probe/agent"

// Architectures the agent is built for: Kubernetes' names (GOARCH); arm is
// ARMv7 (GOARM=7), the Raspberry Pi class of boards.
var Architectures = []string{"amd64", "arm64", "arm"}

// AgentArchive is the agent image for several architectures, as an OCI image
// layout in a tar file: what `ctr images import` loads into a node's
// containerd.
type AgentArchive struct {
	// Path of the tar file.
	Path string
	// Ref is the image's name in the index (and in the cluster).
	Ref string
	// Platforms the index lists, as linux/amd64, linux/arm/v7.
	Platforms []string
	Size      int64
	Cached    bool
}

// Platform is the OCI platform of a Kubernetes architecture name.
func Platform(arch string) (v1.Platform, error) {
	switch arch {
	case "amd64", "arm64", "ppc64le", "s390x", "riscv64":
		return v1.Platform{OS: "linux", Architecture: arch}, nil
	case "arm":
		return v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, nil
	}
	return v1.Platform{}, fmt.Errorf("architecture %q: want one of %s", arch, strings.Join(Architectures, ", "))
}

// AgentImage builds rackdrill-agent for each of archs (a static binary,
// cross-compiled) and writes them as one multi-architecture image, cached by
// the agent's sources and the architectures: a second call with the same
// inputs returns the archive at once.
func (b *Builder) AgentImage(ctx context.Context, archs []string) (AgentArchive, error) {
	archs = slices.Compact(slices.Sorted(slices.Values(archs)))
	archs = slices.DeleteFunc(archs, func(a string) bool { return a == "" })
	if len(archs) == 0 {
		return AgentArchive{}, fmt.Errorf("agent image: no architecture")
	}
	var plats []v1.Platform
	for _, a := range archs {
		p, err := Platform(a)
		if err != nil {
			return AgentArchive{}, err
		}
		plats = append(plats, p)
	}
	goVer, err := b.goVersion()
	if err != nil {
		return AgentArchive{}, err
	}
	// From the clone rackdrill runs in (keyed by the agent's sources), else
	// from rackdrill's module at this binary's version (keyed by it).
	build, src := agentBuild, ""
	if b.RepoRoot != "" {
		if src, err = b.hash("agent"); err != nil {
			return AgentArchive{}, err
		}
	} else if v := ModuleVersion(); v != "" {
		build, src = agentModuleBuild(v, strings.TrimPrefix(goVer, "go")), "module "+ModulePath+"@"+v
	} else {
		return AgentArchive{}, ErrNoAgentSource
	}
	key := shortHash("agent image\n" + src + "\n" + strings.Join(archs, ","))
	out := AgentArchive{Path: filepath.Join(b.CacheDir, "oci", "agent-"+key+".tar"), Ref: AgentRepository + ":" + key}
	for _, p := range plats {
		out.Platforms = append(out.Platforms, p.String())
	}
	if st, err := os.Stat(out.Path); err == nil {
		out.Size, out.Cached = st.Size(), true
		return out, nil
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for i, a := range archs {
		t0 := time.Now()
		dir, err := b.binariesFor(ctx, "agent", build, a)
		if err != nil {
			return AgentArchive{}, err
		}
		bin, err := os.ReadFile(filepath.Join(dir, "rackdrill-agent"))
		if err != nil {
			return AgentArchive{}, err
		}
		img, err := scratchImage(plats[i], "/rackdrill-agent", bin)
		if err != nil {
			return AgentArchive{}, fmt.Errorf("agent image for %s: %w", a, err)
		}
		p := plats[i]
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
		fmt.Fprintf(b.Out, "agent for %-12s %d bytes, in %s\n", p.String(), len(bin), time.Since(t0).Round(time.Millisecond))
	}
	if err := writeOCIArchive(out.Path, idx, out.Ref, key); err != nil {
		return AgentArchive{}, fmt.Errorf("agent image: %w", err)
	}
	st, err := os.Stat(out.Path)
	if err != nil {
		return AgentArchive{}, err
	}
	out.Size = st.Size()
	return out, nil
}

// scratchImage is a FROM scratch image holding one static binary at path,
// its entrypoint.
func scratchImage(p v1.Platform, path string, bin []byte) (v1.Image, error) {
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(path, "/"), Mode: 0o755, Size: int64(len(bin)),
		Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := layer.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant,
		Config: v1.Config{Entrypoint: []string{path}}})
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: "rackdrill: " + path, Created: v1.Time{Time: time.Unix(0, 0)}}})
}

// writeOCIArchive writes idx as an OCI image layout named ref (the annotations
// containerd's importer reads) into a tar file at path, atomically.
func writeOCIArchive(path string, idx v1.ImageIndex, ref, tag string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(mustMkdir(path)), ".oci-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	lp, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return err
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"io.containerd.image.name":          ref,
		"org.opencontainers.image.ref.name": tag,
	})); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".agent-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := tarFolder(f, tmp); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func mustMkdir(path string) string {
	_ = os.MkdirAll(filepath.Dir(path), 0o755)
	return path
}

// tarFolder writes the files under dir to w, sorted, with fixed times.
func tarFolder(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	var files []string
	if err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return err
	}); err != nil {
		return err
	}
	sort.Strings(files)
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(data)),
			Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// ArchiveIndex reads the platforms and image name of an OCI archive written
// by AgentImage: what its index really lists.
func ArchiveIndex(path string) (ref string, platforms []string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	blobs := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", nil, fmt.Errorf("%s: %w", path, err)
		}
		if h.Name == "index.json" || strings.HasPrefix(h.Name, "blobs/") && h.Size < 1<<20 {
			if blobs[h.Name], err = io.ReadAll(tr); err != nil {
				return "", nil, err
			}
		}
	}
	var top v1.IndexManifest
	if err := json.Unmarshal(blobs["index.json"], &top); err != nil {
		return "", nil, fmt.Errorf("%s: index.json: %w", path, err)
	}
	if len(top.Manifests) != 1 {
		return "", nil, fmt.Errorf("%s: index.json lists %d images, want 1", path, len(top.Manifests))
	}
	d := top.Manifests[0]
	var inner v1.IndexManifest
	if err := json.Unmarshal(blobs["blobs/"+d.Digest.Algorithm+"/"+d.Digest.Hex], &inner); err != nil {
		return "", nil, fmt.Errorf("%s: the image index %s: %w", path, d.Digest, err)
	}
	for _, m := range inner.Manifests {
		if m.Platform != nil {
			platforms = append(platforms, m.Platform.String())
		}
	}
	return d.Annotations["io.containerd.image.name"], platforms, nil
}
