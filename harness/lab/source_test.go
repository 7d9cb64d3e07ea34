package lab

import (
	"errors"
	"testing"
)

// Only a version a module proxy can serve builds the agent from the module:
// a clone's build records "(devel)", or a commit with uncommitted changes.
func TestModuleVersion(t *testing.T) {
	for v, want := range map[string]string{
		"":                                   "",
		"(devel)":                            "",
		"v0.3.0":                             "v0.3.0",
		"v0.0.0-20261208001122-0123456789ab": "v0.0.0-20261208001122-0123456789ab",
		"v0.3.1-0.20261208001122-0123456789ab+dirty": "",
	} {
		if got := moduleVersion(v); got != want {
			t.Errorf("moduleVersion(%q) = %q, want %q", v, got, want)
		}
	}
}

// A builder outside a clone, in a binary with no version (a test binary
// records "(devel)"), refuses to build the agent and says the ways to get it.
func TestAgentImageWithoutASource(t *testing.T) {
	b, err := NewBuilder("", nil)
	if err != nil {
		t.Fatal(err)
	}
	b.CacheDir = t.TempDir()
	if _, err := b.AgentImage(t.Context(), []string{"amd64"}); !errors.Is(err, ErrNoAgentSource) {
		t.Fatalf("AgentImage outside a clone: %v, want ErrNoAgentSource", err)
	}
	if _, err := b.AgentSource(); !errors.Is(err, ErrNoAgentSource) {
		t.Fatalf("AgentSource: %v", err)
	}
	defer func(old string) { PublishedAgent = old }(PublishedAgent)
	PublishedAgent = "ghcr.io/rackdrill/agent:v0.3.0"
	if src, err := b.AgentSource(); err != nil || src != "ghcr.io/rackdrill/agent:v0.3.0, published with this release for every architecture, pulled by the nodes" {
		t.Fatalf("AgentSource with a published agent: %q, %v", src, err)
	}
}
