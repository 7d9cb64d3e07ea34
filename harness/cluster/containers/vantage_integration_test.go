package containers_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	mobynet "github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	tcnet "github.com/testcontainers/testcontainers-go/network"

	"rackdrill.dev/rackdrill/harness/cluster/containers"
	"rackdrill.dev/rackdrill/internal/dockertest"
)

// TestIntegrationInternetDialer: the Internet vantage point reaches what is on
// the Internet network and nothing on the LAN, although this machine reaches
// both: the probe's traffic really leaves from the Internet side.
func TestIntegrationInternetDialer(t *testing.T) {
	dockertest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rack := fmt.Sprintf("itest-vantage-%d", time.Now().UnixNano())
	p := containers.NewProvider(rack)
	t.Cleanup(func() { _ = p.Down(context.Background()) })
	labels := func(extra ...string) map[string]string {
		m := map[string]string{containers.LabelRack: rack}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	mknet := func(cidr string) string {
		pre := netip.MustParsePrefix(cidr)
		nw, err := tcnet.New(ctx, tcnet.WithLabels(labels()), tcnet.WithIPAM(&mobynet.IPAM{Config: []mobynet.IPAMConfig{{Subnet: pre}}}))
		if err != nil {
			t.Fatal(err)
		}
		return nw.Name
	}
	lan, inet := mknet("172.31.250.0/24"), mknet("172.31.251.0/24")
	start := func(network string, extra ...string) string {
		req := dockertest.GoImage(t, "agent", "../../..", "./cmd/rackdrill-agent", labels(extra...), "--demo")
		req.Networks = []string{network}
		c, err := testcontainers.GenericContainer(ctx, req)
		testcontainers.CleanupContainer(t, c)
		if err != nil {
			t.Fatal(err)
		}
		ip, err := c.ContainerIP(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ip + ":8080"
	}
	onLAN := start(lan)
	onInternet := start(inet)
	start(inet, containers.LabelVantage, "internet")

	dial, err := p.InternetDialer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	try := func(d func(context.Context, string, string) (net.Conn, error), addr string) error {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		c, err := d(dctx, "tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	}
	host := (&net.Dialer{}).DialContext
	if err := try(host, onLAN); err != nil {
		t.Fatalf("this machine cannot reach the LAN container: %v", err)
	}
	if err := try(dial, onInternet); err != nil {
		t.Errorf("the vantage point cannot reach the Internet network: %v", err)
	}
	if err := try(dial, onLAN); err == nil {
		t.Errorf("the vantage point reaches the LAN at %s", onLAN)
	}
	// The dialer leaves this process's own threads where they were.
	if err := try(host, onLAN); err != nil {
		t.Errorf("after the vantage dials, this machine no longer reaches the LAN: %v", err)
	}
}
