package k3d_test

import (
	"context"
	"errors"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"rackdrill.dev/rackdrill/harness/cluster/k3d"
)

// k3d cannot be installed on this offline machine: the cases below put a
// stand-in k3d on PATH, a script that answers, to reach the checks
// after them. The missing-k3d case uses no stand-in, and Docker is the real
// CLI pointed at a socket where no daemon listens.
func TestPrerequisitesFailFastNamingWhatIsMissing(t *testing.T) {
	realDocker, err := osexec.LookPath("docker")
	if err != nil {
		t.Skip("no docker CLI:", err)
	}
	bin := t.TempDir()
	t.Setenv("PATH", bin)
	start := time.Now()
	err = k3d.Prerequisites(context.Background())
	var me *k3d.MissingError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "the k3d binary is not on PATH") || !strings.Contains(err.Error(), "https://k3d.io") {
		t.Fatalf("no k3d: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s to say k3d is missing", took)
	}
	write := func(name, script string) {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("k3d", "exit 3")
	if err := k3d.Prerequisites(context.Background()); err == nil || !strings.Contains(err.Error(), "does not run") {
		t.Errorf("a broken k3d: %v", err)
	}
	write("k3d", "echo k3d version v5.8.3")
	if err := os.Symlink(realDocker, filepath.Join(bin, "docker")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(bin, "no-dockerd.sock"))
	if err := k3d.Prerequisites(context.Background()); err == nil || !strings.Contains(err.Error(), "Docker does not answer") ||
		!strings.Contains(err.Error(), "no-dockerd.sock") {
		t.Errorf("no Docker: %v", err)
	}
}
