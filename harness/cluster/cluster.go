// Package cluster owns the provider abstraction: how a rack is built or adopted
// (Provider) and how the harness acts on one of its machines (Node). Faults and
// probes are written once against these interfaces; the containers, k3d and ssh
// providers implement them.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/topology"
)

// Provider builds (containers, k3d) or adopts (ssh) a rack.
type Provider interface {
	// Up builds or adopts the rack and returns when the API answers.
	Up(ctx context.Context, r *topology.Rack) error
	Nodes(ctx context.Context) ([]Node, error)
	Kubeconfig(ctx context.Context) ([]byte, error)
	// Down removes everything carrying the rack's label; idempotent, like rm -f.
	Down(ctx context.Context) error
}

// Preparer is a provider that needs something before it can build a rack (the
// lab's images, k3d's binary): Prepare makes or checks it, in seconds when it
// is there already.
type Preparer interface {
	Prepare(ctx context.Context) error
}

// NodeLister is the part of a provider that finds the rack's machines. It is all
// that reverting a recorded fault needs, so `rackdrill recover` works on a rack
// whose other parts are broken.
type NodeLister interface {
	Nodes(ctx context.Context) ([]Node, error)
}

// Node is one machine of the rack.
type Node interface {
	exec.Cmder
	Name() string
	Roles() []topology.Role
	Addr() netip.Addr
	// Stop halts the machine gracefully (systemctl poweroff, docker stop).
	Stop(ctx context.Context) error
	// Start powers it on again; a no-op on a running machine.
	Start(ctx context.Context) error
	// Kill is a hard power loss; ErrUnsupported where that is impossible.
	Kill(ctx context.Context) error
	// Running reports whether the machine is up.
	Running(ctx context.Context) (bool, error)
}

// PowerOnLimit is the longest a Node's Start may wait for a machine to come
// back (a real machine powered on, or a person asked to): reverts that power
// machines on are bounded by it, and a Ctrl-C waits for them.
const PowerOnLimit = 10 * time.Minute

// ErrUnsupported is returned by an operation a provider cannot perform.
var ErrUnsupported = errors.New("not supported by this provider")

// Select picks nodes with a selector "ROLE:INDEX", "ROLE:*" or a node name.
// ROLE is the plural of a topology role (servers, workers, loadbalancers, nas,
// vps); INDEX counts from 0 in topology order.
func Select(nodes []Node, selector string) ([]Node, error) {
	roleName, idx, hasRole := strings.Cut(selector, ":")
	if !hasRole {
		for _, n := range nodes {
			if n.Name() == selector {
				return []Node{n}, nil
			}
		}
		return nil, fmt.Errorf("select %q: no node of that name", selector)
	}
	role, ok := rolesByPlural[roleName]
	if !ok {
		return nil, fmt.Errorf("select %q: unknown role %q (want servers, workers, loadbalancers, nas or vps)", selector, roleName)
	}
	var matching []Node
	for _, n := range nodes {
		for _, r := range n.Roles() {
			if r == role {
				matching = append(matching, n)
				break
			}
		}
	}
	if idx == "*" {
		if len(matching) == 0 {
			return nil, fmt.Errorf("select %q: no node has role %s", selector, role)
		}
		return matching, nil
	}
	i, err := strconv.Atoi(idx)
	if err != nil || i < 0 {
		return nil, fmt.Errorf("select %q: index must be a number from 0 or *", selector)
	}
	if i >= len(matching) {
		return nil, fmt.Errorf("select %q: only %d nodes have role %s", selector, len(matching), role)
	}
	return []Node{matching[i]}, nil
}

var rolesByPlural = map[string]topology.Role{
	"servers":       topology.RoleServer,
	"workers":       topology.RoleWorker,
	"loadbalancers": topology.RoleLoadBalancer,
	"nas":           topology.RoleNAS,
	"vps":           topology.RoleVPS,
}

// ByName picks the named nodes, in the order given, and fails naming every name
// that is missing.
func ByName(nodes []Node, names ...string) ([]Node, error) {
	var out []Node
	var missing []string
	for _, name := range names {
		found := false
		for _, n := range nodes {
			if n.Name() == name {
				out = append(out, n)
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no such node: %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// KubeconfigSource is a provider that can give the rack's kubeconfig (admin
// credentials). The containers and k3d providers build the rack and hold it;
// the ssh provider reads it from a server.
type KubeconfigSource interface {
	Kubeconfig(ctx context.Context) ([]byte, error)
}

// Dialer is a vantage point's network: connections made through it leave from
// that place (the Internet vantage point has no route to the LAN).
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// InternetVantage is a provider that has an Internet vantage point for the
// internet probe. Without it the probe runs from the harness's own machine,
// which on a real rack is wherever the user runs rackdrill.
type InternetVantage interface {
	InternetDialer(ctx context.Context) (Dialer, error)
}

// Halt is how a machine last went down.
type Halt struct {
	At time.Time `json:"at"`
	// Clean: the machine's init reached poweroff (every service stopped),
	// rather than losing power or being killed.
	Clean  bool   `json:"clean"`
	Detail string `json:"detail"`
}

// HaltReporter is a node that can tell how it last went down (the UPS drill
// asserts clean halts). The containers provider reads it from Docker.
type HaltReporter interface {
	LastHalt(ctx context.Context) (Halt, error)
}

// Arch is the CPU architecture of machine n as Kubernetes names it (amd64,
// arm64, arm), read with uname -m; declared, the topology's spec.nodes[].arch,
// must agree with it when given.
func Arch(ctx context.Context, n Node, declared string) (string, error) {
	out, err := exec.Output(n.Command(ctx, "uname", "-m"))
	if err != nil {
		return "", fmt.Errorf("%s: uname -m: %w", n.Name(), err)
	}
	m := strings.TrimSpace(string(out))
	arch, ok := map[string]string{"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
		"armv7l": "arm", "armv7": "arm", "armv8l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}[m]
	if !ok {
		return "", fmt.Errorf("%s: uname -m says %q, an architecture rackdrill does not build for (amd64, arm64, armv7)", n.Name(), m)
	}
	if declared != "" && declared != arch {
		return "", fmt.Errorf("%s: the topology says arch %s (spec.nodes[].arch, amd64 when left out) and the machine is %s (uname -m: %s)", n.Name(), declared, arch, m)
	}
	return arch, nil
}
