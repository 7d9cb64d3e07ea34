package cluster_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/topology"
)

// unameNode is a machine whose uname -m prints machine: the architecture
// comes from the machine, not from a real host (none of these runs here).
type unameNode struct{ machine string }

type unameCmd struct {
	exec.Settings
	out string
}

func (c *unameCmd) Run() error {
	if c.Stdout != nil {
		_, _ = c.Stdout.Write([]byte(c.out + "\n"))
	}
	return nil
}

func (n unameNode) Command(ctx context.Context, name string, args ...string) exec.Cmd {
	c := &unameCmd{out: n.machine}
	c.Init(c, append([]string{name}, args...))
	return c
}
func (unameNode) Name() string                          { return "pi-1" }
func (unameNode) Roles() []topology.Role                { return []topology.Role{topology.RoleWorker} }
func (unameNode) Addr() netip.Addr                      { return netip.Addr{} }
func (unameNode) Stop(context.Context) error            { return nil }
func (unameNode) Start(context.Context) error           { return nil }
func (unameNode) Kill(context.Context) error            { return nil }
func (unameNode) Running(context.Context) (bool, error) { return true, nil }

// A node's architecture, as the agent image and etcdctl are built for it:
// uname -m's names mapped to Kubernetes', a declared arch checked against the
// machine, an unknown machine refused with its name.
func TestArch(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ machine, declared, want, err string }{
		{"x86_64", "", "amd64", ""},
		{"aarch64", "arm64", "arm64", ""},
		{"armv7l", "", "arm", ""},
		{"aarch64", "amd64", "", "says arch amd64 (spec.nodes[].arch, amd64 when left out) and the machine's userland is arm64"},
		{"mips", "", "", `uname -m says "mips"`},
		// getconf LONG_BIT after uname -m: the userland's word size. A Pi
		// running 32-bit Raspberry Pi OS on its 64-bit kernel says
		// aarch64 to uname and runs an arm kubelet: it is arm.
		{"aarch64\n32", "arm", "arm", ""},
		{"aarch64\n32", "", "arm", ""},
		{"aarch64\n64", "arm64", "arm64", ""},
		{"aarch64\n32", "arm64", "", "the machine's userland is arm (uname -m: aarch64, a 32-bit userland)"},
		{"x86_64\n32", "", "", "a 32-bit userland on x86_64"},
	} {
		got, err := cluster.Arch(ctx, unameNode{tc.machine}, tc.declared)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "pi-1") {
				t.Errorf("%s declared %q: %q, %v; want an error naming pi-1 with %q", tc.machine, tc.declared, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s declared %q: %q, %v; want %s", tc.machine, tc.declared, got, err, tc.want)
		}
	}
}
