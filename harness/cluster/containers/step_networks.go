package containers

// Step: the rack's networks and the Internet vantage point.

import (
	"context"
	"fmt"
	"net/netip"

	mobynet "github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	tcnet "github.com/testcontainers/testcontainers-go/network"

	"rackdrill.dev/rackdrill/harness/lab"
)

// networks creates the rack's networks: Docker allocates dynamic addresses
// only from the top quarter of each subnet, away from the nodes, the VIP and
// the MetalLB pool the topology places below it.
func (u *upRun) networks(ctx context.Context) error {
	u.nets = map[string]string{}
	for _, n := range u.r.Spec.Networks {
		pre := n.Prefix()
		gw := pre.Addr().Next()
		dyn := netip.PrefixFrom(quarter(pre), pre.Bits()+2)
		nw, err := tcnet.New(ctx,
			tcnet.WithLabels(map[string]string{LabelRack: u.r.Metadata.Name, LabelNetwork: n.Name}),
			tcnet.WithIPAM(&mobynet.IPAM{Driver: "default", Config: []mobynet.IPAMConfig{{Subnet: pre, Gateway: gw, IPRange: dyn}}}))
		if err != nil {
			return fmt.Errorf("network %s (%s): %w", n.Name, n.CIDR, err)
		}
		u.nets[n.Name] = nw.Name
	}
	return nil
}

// vantage starts the Internet vantage point: a small container on the Internet
// network only, whose network namespace the internet probe dials from.
func (u *upRun) vantage(ctx context.Context) error {
	inet := u.r.InternetNetwork()
	if inet == nil {
		return nil
	}
	agent, err := lab.ContentTag("agent")
	if err != nil {
		return err
	}
	netName := u.nets[inet.Name]
	_, err = testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image: agent, Name: u.r.Metadata.Name + "-internet-vantage", Cmd: []string{"--demo"},
			Labels:   map[string]string{LabelRack: u.r.Metadata.Name, LabelVantage: "internet"},
			Networks: []string{netName},
		},
		Started: true,
	})
	return err
}

// quarter is the first address of the top quarter of p.
func quarter(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	size := uint32(1) << (32 - p.Bits())
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += size / 4 * 3
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
