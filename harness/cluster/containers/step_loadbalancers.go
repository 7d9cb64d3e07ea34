package containers

// Step: the API load balancers (keepalived and HAProxy).

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/topology"
)

func (u *upRun) loadBalancers(ctx context.Context) error {
	cp := u.r.Spec.ControlPlane
	admin := u.r.AdminNetwork().Prefix()
	type backend struct{ Name, Address string }
	var backends []backend
	if cp.HAProxy != nil {
		for _, name := range cp.HAProxy.Backends {
			backends = append(backends, backend{name, u.r.Node(name).Address})
		}
	}
	lbs := u.withRole(topology.RoleLoadBalancer)
	err := u.each(lbs, func(n *node) error {
		var units []string
		if cp.HAProxy != nil && slices.Contains(cp.HAProxy.Nodes, n.name) {
			cfg, err := tmpl.Render("haproxy.cfg.tmpl", map[string]any{"Node": n.name, "Rack": u.r.Metadata.Name,
				"Port": cp.Endpoint.Port, "StatsPort": cp.HAProxy.StatsPort, "Backends": backends})
			if err != nil {
				return err
			}
			if err := write(ctx, n, "/etc/haproxy/haproxy.cfg", cfg); err != nil {
				return u.fail(ctx, "write haproxy.cfg", n, err)
			}
			units = append(units, "haproxy")
		}
		if ka := cp.Keepalived; ka != nil {
			for _, m := range ka.Members {
				if m.Node != n.name {
					continue
				}
				sum := sha(u.r.Metadata.Name)
				cfg, err := tmpl.Render("keepalived.conf.tmpl", map[string]any{"Node": n.name, "Rack": u.r.Metadata.Name,
					"Master": ka.Master() == n.name, "Interface": ka.Interface, "RouterID": ka.VirtualRouterID,
					"Priority": m.Priority, "Password": sum[:8], "VIP": cp.Endpoint.Host, "Bits": admin.Bits(),
					// A node without HAProxy (seed 000's servers) holds the VIP
					// for as long as it is up: the API server answers there.
					"TrackHAProxy": slices.Contains(units, "haproxy")})
				if err != nil {
					return err
				}
				if err := write(ctx, n, "/etc/keepalived/keepalived.conf", cfg); err != nil {
					return u.fail(ctx, "write keepalived.conf", n, err)
				}
				units = append(units, "keepalived")
			}
		}
		if len(units) == 0 {
			return nil
		}
		if err := exec.Run(n.Command(ctx, "systemctl", append([]string{"enable", "--now"}, units...)...)); err != nil {
			return u.fail(ctx, "start "+strings.Join(units, ", "), n, err)
		}
		return nil
	})
	if err != nil || cp.Keepalived == nil {
		return err
	}
	master := u.nodes[cp.Keepalived.Master()]
	return u.wait(ctx, IntervalVIP, func() error {
		out, err := exec.Output(master.Command(ctx, "ip", "-4", "-o", "addr", "show"))
		if err == nil && strings.Contains(string(out), " "+cp.Endpoint.Host+"/") {
			return nil
		}
		return fmt.Errorf("the VIP %s is not on the MASTER %s", cp.Endpoint.Host, master.name)
	})
}
