package lab_test

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"

	"rackdrill.dev/rackdrill/harness/lab"
)

// TestAgentImageMultiArch builds the agent image a real rack loads, for the
// three architectures racks have (seed 002's boards are ARMv7): the archive's
// index lists each platform, and each platform's image holds a static
// rackdrill-agent for that machine. A second build of the same inputs is the
// cached archive.
func TestAgentImageMultiArch(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles the agent three times")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	b := newTestBuilder(t)
	a, err := b.AgentImage(ctx, []string{"arm", "amd64", "arm64", "amd64", ""})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %s, %d bytes, platforms %v", a.Path, a.Ref, a.Size, a.Platforms)
	ref, plats, err := lab.ArchiveIndex(a.Path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"linux/amd64", "linux/arm/v7", "linux/arm64"}
	if ref != a.Ref || !slices.Equal(plats, want) {
		t.Fatalf("the archive's index names %q with platforms %v, want %q with %v", ref, plats, a.Ref, want)
	}

	// Each platform's image: its config says the platform, its one layer
	// holds the agent built for that machine.
	dir := t.TempDir()
	if err := untar(a.Path, dir); err != nil {
		t.Fatal(err)
	}
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	tm, _ := top.IndexManifest()
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "arm": elf.EM_ARM}
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Architecture != d.Platform.Architecture || cf.Variant != d.Platform.Variant || cf.OS != "linux" ||
			!slices.Equal(cf.Config.Entrypoint, []string{"/rackdrill-agent"}) {
			t.Errorf("%s: config says %s/%s/%s, entrypoint %v", d.Platform, cf.OS, cf.Architecture, cf.Variant, cf.Config.Entrypoint)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("%s: %d layers, %v", d.Platform, len(layers), err)
		}
		bin := fileInLayer(t, layers[0], "rackdrill-agent")
		f, err := elf.NewFile(bytes.NewReader(bin))
		if err != nil {
			t.Fatalf("%s: rackdrill-agent: %v", d.Platform, err)
		}
		if f.Machine != machines[d.Platform.Architecture] {
			t.Errorf("%s: rackdrill-agent is built for %s", d.Platform, f.Machine)
		}
		if f.Section(".interp") != nil {
			t.Errorf("%s: rackdrill-agent is dynamically linked", d.Platform)
		}
		serves(t, d.Platform.String(), bin)
	}

	again, err := b.AgentImage(ctx, []string{"amd64", "arm64", "arm"})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Cached || again.Path != a.Path || again.Ref != a.Ref {
		t.Errorf("second build of the same inputs: %+v, want the cached %s", again, a.Path)
	}
	if _, err := b.AgentImage(ctx, []string{"mips"}); err == nil {
		t.Error("an architecture the agent is not built for was accepted")
	}
}

func untar(path, dir string) error {
	return runCmd("tar", "-xf", path, "-C", dir)
}

func fileInLayer(t *testing.T, l interface {
	Uncompressed() (io.ReadCloser, error)
}, name string) []byte {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	dir := t.TempDir()
	tf := filepath.Join(dir, "layer.tar")
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tf, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := untar(tf, dir); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("the layer has no %s: %v", name, err)
	}
	return bin
}

func runCmd(name string, args ...string) error {
	out, err := osexec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %v: %v\n%s", name, args, err, out)
	}
	return nil
}

// emulators are the binfmt_misc entries under which this machine runs each
// architecture's binaries (hack/setup.sh registers them).
var emulators = map[string]string{"linux/arm64": "qemu-aarch64", "linux/arm/v7": "qemu-arm"}

// serves runs an agent binary here (an ARM one under QEMU's emulation, as
// seed 002's Pis run it natively) and asks its health endpoint.
func serves(t *testing.T, platform string, bin []byte) {
	t.Helper()
	if emu, ok := emulators[platform]; ok {
		if _, err := os.Stat("/proc/sys/fs/binfmt_misc/" + emu); err != nil {
			if os.Getenv("CI") != "" {
				t.Errorf("%s: %s is not registered with binfmt_misc (hack/setup.sh registers it): %v", platform, emu, err)
			} else {
				t.Logf("%s: not run: %s is not registered with binfmt_misc (make setup registers it)", platform, emu)
			}
			return
		}
	}
	path := filepath.Join(t.TempDir(), "rackdrill-agent")
	if err := os.WriteFile(path, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var out bytes.Buffer
	cmd := osexec.Command(path, "-listen", addr)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: start the agent: %v", platform, err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: the agent's /healthz answered %s", platform, resp.Status)
			}
			t.Logf("%s: the agent answered /healthz %s", platform, resp.Status)
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: the agent did not answer within 30 s: %v\n%s", platform, err, out.String())
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}
