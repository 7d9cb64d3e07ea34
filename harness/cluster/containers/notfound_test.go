package containers

import (
	"context"
	"os"
	"testing"

	"github.com/moby/moby/client"
)

// Down is idempotent: what is gone already is not an error. Docker says so
// in different words for a container ("No such container") and a network
// ("network ... not found"); the client's typed error says it once.
func TestRemovingWhatIsGoneIsNotAnError(t *testing.T) {
	ctx := context.Background()
	p := NewProvider("notfound-test")
	dc, err := p.client(ctx)
	if err == nil {
		_, err = dc.Ping(ctx, client.PingOptions{})
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but Docker does not answer: %v", err)
		}
		t.Skipf("no Docker engine: %v", err)
	}
	_, cerr := dc.ContainerRemove(ctx, "rackdrill-no-such-container", client.ContainerRemoveOptions{Force: true})
	_, nerr := dc.NetworkRemove(ctx, "rackdrill-no-such-network", client.NetworkRemoveOptions{})
	_, verr := dc.VolumeRemove(ctx, "rackdrill-no-such-volume", client.VolumeRemoveOptions{})
	for what, err := range map[string]error{"container": cerr, "network": nerr, "volume": verr} {
		if err == nil {
			t.Fatalf("removing a %s that does not exist: no error", what)
		}
		if !isNotFound(err) {
			t.Errorf("removing a %s that does not exist: %v, not taken for \"not found\"", what, err)
		}
	}
}
