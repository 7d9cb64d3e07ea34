package containers_test

import (
	"context"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"

	"rackdrill.dev/rackdrill/harness/cluster/containers"
	"rackdrill.dev/rackdrill/harness/topology"
	"rackdrill.dev/rackdrill/internal/dockertest"
)

// An up that fails before it built anything (the rack is up already, an image
// is missing) removes nothing: "removing the half-built rack" is for what
// this up created, never for the running lab it refused to build over.
func TestUpRefusedLeavesTheRunningRack(t *testing.T) {
	dockertest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const rack = "up-twice-test"
	c, err := testcontainers.GenericContainer(ctx, dockertest.SleeperImage(t, map[string]string{
		containers.LabelRack: rack, containers.LabelNode: "server-1", containers.LabelRoles: "server"}))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Terminate(context.WithoutCancel(ctx)) }()
	r, _, err := topology.Load("../../../kind-configs/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r.Metadata.Name = rack
	p := containers.NewProvider(rack)
	if err := p.Up(ctx, r); err == nil {
		t.Fatal("up over a running rack succeeded")
	} else {
		t.Logf("up refused: %v", err)
	}
	nodes, err := p.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 {
		t.Fatalf("the running rack's machine is gone after a refused up: %d machines left", len(nodes))
	}
}
