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
				"Port": cp.Endpoint.Port, "StatsPort": cp.HAProxy.StatsPort, "Backends": backends, "TCPCheck": u.isK3s()})
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
				if err := write(ctx, n, keepalivedInterfaceScriptPath, keepalivedInterfaceScript(u.r.Node(n.name).Address, "/etc/keepalived/keepalived.conf")); err != nil {
					return u.fail(ctx, "write keepalived's interface script", n, err)
				}
				if err := write(ctx, n, "/etc/systemd/system/keepalived.service.d/rackdrill-interface.conf",
					"[Service]\nExecStartPre=/bin/sh "+keepalivedInterfaceScriptPath+"\n"); err != nil {
					return u.fail(ctx, "write keepalived's drop-in", n, err)
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

const keepalivedInterfaceScriptPath = "/usr/local/sbin/rackdrill-keepalived-interface"

// keepalivedInterfaceScript points keepalived's instance in conf (its
// interface, and the VIP's dev) at the interface that holds addr, the
// machine's address on the admin network, before each start. A machine on
// several networks (the converged lab's storage network) gets its interfaces
// from Docker in a new order at every start: after a restart its eth0 may be
// the storage network, and keepalived on it would neither hear the other
// members nor put the VIP where the LAN is (two MASTERs were seen, after
// server-kill-1 on the converged lab). A real rack's interface names are
// stable, and its spec.controlPlane.keepalived.interface is used as written.
func keepalivedInterfaceScript(addr, conf string) string {
	return fmt.Sprintf(`#!/bin/sh
# Written by rackdrill: keepalived's interface is the one holding %[1]s.
set -eu
ifc=$(ip -4 -o addr show to %[1]s/32 | awk '{print $2; exit}')
if [ -z "$ifc" ]; then echo "no interface holds %[1]s" >&2; exit 1; fi
sed -i -e "s/^\( *interface \).*/\1$ifc/" -e "s/\( dev \)[^ ]*\$/\1$ifc/" %[2]s
`, addr, conf)
}
