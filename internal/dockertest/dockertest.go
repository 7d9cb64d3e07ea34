// Package dockertest holds what Docker-backed tests share: finding the Docker
// engine (skipping only when it truly is absent, and never in CI) and building
// the small local images they run, since no image can be pulled here.
package dockertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"

	"rackdrill.dev/rackdrill/harness/cluster/containers"
)

// Require skips t when no Docker engine answers, unless CI is set: in CI a
// missing engine is a failure, not a skip.
func Require(t *testing.T) {
	t.Helper()
	containers.ConfigureTestcontainers()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dc, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err == nil {
		_, err = dc.Ping(ctx, client.PingOptions{})
	}
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set but Docker does not answer: %v", err)
	}
	t.Skipf("no Docker engine: %v", err)
}

// sleeperSource is the program of the test node image: it runs until SIGTERM,
// like a service, so that stop, kill and start are observable.
const sleeperSource = `package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
`

// SleeperImage returns a request for a container that runs a static Go
// program until SIGTERM, like a service, so that stop, kill and start are
// observable.
func SleeperImage(t *testing.T, labels map[string]string) testcontainers.GenericContainerRequest {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(sleeperSource), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module sleeper\n\ngo 1.24\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return GoImage(t, "sleeper", dir, ".", labels)
}

// GoImage builds the Go package pkg (a path or import path, built in dir) as a
// static binary into a FROM scratch image named rackdrill-test-<name>, and
// returns a request for a started container of it with labels and args.
func GoImage(t *testing.T, name, dir, pkg string, labels map[string]string, args ...string) testcontainers.GenericContainerRequest {
	t.Helper()
	ctx := t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(ctx, "entry"), pkg)
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	df := "FROM scratch\nCOPY entry /entry\nSTOPSIGNAL SIGTERM\nENTRYPOINT [\"/entry\"]\n"
	if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	return testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			FromDockerfile: testcontainers.FromDockerfile{Context: ctx, Repo: "rackdrill-test-" + name, Tag: "latest", KeepImage: true,
				BuildOptionsModifier: func(o *client.ImageBuildOptions) {
					o.Labels = map[string]string{containers.LabelImage: "test-" + name}
				}},
			Labels: labels,
			Cmd:    args,
		},
		Started: true,
	}
}
