package lab

import (
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// ModulePath is rackdrill's Go module.
const ModulePath = "rackdrill.dev/rackdrill"

// PublishedAgent is the multi-architecture agent image a release publishes
// under its own version, which the release's binary uses when the topology
// names none. A release build sets it:
//
//	-ldflags "-X rackdrill.dev/rackdrill/harness/lab.PublishedAgent=ghcr.io/…/agent:v0.3.0"
//
// Other builds leave it empty and build the agent on this machine.
var PublishedAgent = ""

// ModuleVersion is the version of rackdrill's module this binary was built
// at by `go install rackdrill.dev/rackdrill/cmd/rackdrill@<version>`; "" for a
// build from a clone ("(devel)", or a commit with uncommitted changes, which
// no module proxy serves).
func ModuleVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok || bi.Main.Path != ModulePath {
		return ""
	}
	return moduleVersion(bi.Main.Version)
}

func moduleVersion(v string) string {
	if v == "" || v == "(devel)" || strings.HasSuffix(v, "+dirty") {
		return ""
	}
	return v
}

// NewToolBuilder is the builder of the programs rackdrill puts on a rack's
// machines: etcdctl and etcdutl (built from the Go module proxy, which needs
// Go and no clone) and the probe agent (from the clone rackdrill runs in, or
// else from rackdrill's module at this binary's own version).
func NewToolBuilder(out io.Writer) (*Builder, error) {
	root, err := RepoRoot()
	if err != nil {
		root = ""
	}
	return NewBuilder(root, out)
}

// ErrNoAgentSource is returned when this rackdrill cannot build the agent.
var ErrNoAgentSource = errors.New("this rackdrill cannot build the probe agent: it was not built by a release (which publishes the agent's image) " +
	"nor by `go install " + ModulePath + "/cmd/rackdrill@<version>` (which builds the agent at that version), and it does not run from a clone of rackdrill's repository. " +
	"Set spec.probes.image to an agent image your nodes can pull (`rackdrill probes image` in a clone builds one), install a released rackdrill, " +
	"or install it with go install at a version")

// AgentSource says where the agent image of this binary comes from when the
// topology names none, for the plan: the image its release published, the
// clone it runs from, or its module's version.
func (b *Builder) AgentSource() (string, error) {
	switch {
	case PublishedAgent != "":
		return fmt.Sprintf("%s, published with this release for every architecture, pulled by the nodes", PublishedAgent), nil
	case b.RepoRoot != "":
		return fmt.Sprintf("%s:<hash>, built on this machine from the clone at %s", AgentRepository, b.RepoRoot), nil
	case ModuleVersion() != "":
		return fmt.Sprintf("%s:<hash>, built on this machine from %s@%s (Go and its module proxy)", AgentRepository, ModulePath, ModuleVersion()), nil
	}
	return "", ErrNoAgentSource
}

// agentModuleBuild builds the agent from rackdrill's module at version v, as
// `go install` built this binary: a build module that requires it.
func agentModuleBuild(v, goDirective string) *GoBuild {
	return &GoBuild{Name: "agent-module", GoDirective: goDirective,
		Require:  []string{ModulePath + " " + v},
		Packages: []string{ModulePath + "/cmd/rackdrill-agent"}, LDFlags: "-s -w",
		Hint: fmt.Sprintf("the agent is built from %s@%s through the Go module proxy (go env GOPROXY); a version the proxy does not serve cannot be built: set spec.probes.image instead", ModulePath, v)}
}
