package probe

import (
	"context"
	"fmt"
	"net/netip"
	osexec "os/exec"
	"strings"
)

// ForgetNeighbour returns what forgets this machine's neighbour (ARP) entry
// for ip, with iproute2's `ip neigh flush to IP` (root, or CAP_NET_ADMIN); it
// tries once now, so that a machine where it cannot is told before any drill.
func ForgetNeighbour(ctx context.Context, ip string) (func(ctx context.Context) error, error) {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return nil, fmt.Errorf("forget neighbour %q: %w", ip, err)
	}
	forget := func(ctx context.Context) error {
		out, err := osexec.CommandContext(ctx, "ip", "neigh", "flush", "to", addr.String()).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip neigh flush to %s: %v: %s", addr, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := forget(ctx); err != nil {
		return nil, err
	}
	return forget, nil
}
