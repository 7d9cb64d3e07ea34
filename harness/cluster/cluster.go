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

// Arch is the architecture of machine n's userland as Kubernetes names it
// (amd64, arm64, arm): what its kubelet and containers run as, read with
// uname -m and the userland's word size (getconf LONG_BIT). A Raspberry Pi
// running 32-bit Raspberry Pi OS on its 64-bit kernel says aarch64 to uname
// and is arm. declared, the topology's spec.nodes[].arch, must agree with it
// when given.
func Arch(ctx context.Context, n Node, declared string) (string, error) {
	out, err := exec.Output(n.Command(ctx, "sh", "-c", "uname -m; getconf LONG_BIT 2>/dev/null || true"))
	if err != nil {
		return "", fmt.Errorf("%s: uname -m: %w", n.Name(), err)
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return "", fmt.Errorf("%s: uname -m printed nothing", n.Name())
	}
	m, bits := f[0], ""
	if len(f) > 1 {
		bits = f[1]
	}
	arch, ok := topology.CanonicalArch(m)
	if !ok {
		return "", fmt.Errorf("%s: uname -m says %q, an architecture rackdrill does not build for (amd64, arm64, armv7)", n.Name(), m)
	}
	seen := "uname -m: " + m
	if bits == "32" {
		switch arch {
		case "arm64":
			arch, seen = "arm", seen+", a 32-bit userland"
		case "arm":
		default:
			return "", fmt.Errorf("%s: a 32-bit userland on %s (uname -m), which rackdrill does not build for (amd64, arm64, armv7)", n.Name(), m)
		}
	}
	if declared != "" && declared != arch {
		return "", fmt.Errorf("%s: the topology says arch %s (spec.nodes[].arch, amd64 when left out) and the machine's userland is %s (%s)", n.Name(), declared, arch, seen)
	}
	return arch, nil
}
