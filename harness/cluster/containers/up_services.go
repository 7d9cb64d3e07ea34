package containers

// The rack's own services outside Kubernetes: the API load balancers, the
// NAS, the tunnel to the VPS and the UPS.

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/moby/moby/client"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/probe"
	agentpkg "rackdrill.dev/rackdrill/harness/probe/agent"
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
					"Priority": m.Priority, "Password": sum[:8], "VIP": cp.Endpoint.Host, "Bits": admin.Bits()})
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

// nas starts nfs-ganesha on the NAS and waits until NFS answers through
// rpcbind, as clients find it.
func (u *upRun) nas(ctx context.Context) error {
	st := u.r.Spec.Storage
	if st == nil || st.NFS == nil {
		return nil
	}
	n := u.nodes[st.NFS.Node]
	cfg, err := tmpl.Render("ganesha.conf.tmpl", map[string]any{"Node": n.name, "Exports": st.NFS.Exports})
	if err != nil {
		return err
	}
	if err := write(ctx, n, "/etc/ganesha/ganesha.conf", cfg); err != nil {
		return u.fail(ctx, "write ganesha.conf", n, err)
	}
	if err := exec.Run(n.Command(ctx, "systemctl", "enable", "--now", "rpcbind", "nfs-ganesha")); err != nil {
		return u.fail(ctx, "start nfs-ganesha", n, err)
	}
	if err := u.wait(ctx, IntervalNAS, func() error {
		out, err := exec.Output(n.Command(ctx, "rpcinfo", "-p", "127.0.0.1"))
		if err != nil {
			return err
		}
		if !strings.Contains(string(out), "nfs") || !strings.Contains(string(out), "mountd") {
			return fmt.Errorf("nfs and mountd not registered with rpcbind yet:\n%s", out)
		}
		return nil
	}); err != nil {
		return u.fail(ctx, "NFS registered with rpcbind", n, err)
	}
	return nil
}

// tunnel starts the tunnel client Deployment: ssh -R from the VPS's public
// ports to the target (the ingress IP), with the rack's key and the VPS's host
// key pinned; then waits until the demo app answers from the Internet side.
func (u *upRun) tunnel(ctx context.Context) error {
	t := u.r.Spec.Tunnel
	if t == nil {
		return nil
	}
	if t.Type != topology.TunnelSSH {
		return fmt.Errorf("spec.tunnel.type: the lab's tunnel is ssh (FRP cannot be built offline), not %s", t.Type)
	}
	vps := u.nodes[t.Server.Node]
	dc, err := u.p.client(ctx)
	if err != nil {
		return err
	}
	ins, err := dc.ContainerInspect(ctx, vps.id, client.ContainerInspectOptions{})
	if err != nil {
		return err
	}
	var lanAddr string
	for name, es := range ins.Container.NetworkSettings.Networks {
		if name == u.nets[u.r.AdminNetwork().Name] && es.IPAddress.IsValid() {
			lanAddr = es.IPAddress.String()
		}
	}
	if lanAddr == "" {
		return u.fail(ctx, "find the VPS's LAN address", vps, fmt.Errorf("not attached to the LAN"))
	}
	hk, err := exec.Output(vps.Command(ctx, "cat", "/etc/ssh/ssh_host_ed25519_key.pub"))
	if err != nil {
		return u.fail(ctx, "read the VPS host key", vps, err)
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey(hk)
	if err != nil {
		return err
	}
	var forwards []string
	for _, p := range t.Ports {
		forwards = append(forwards, fmt.Sprintf("0.0.0.0:%d:%s:%d", p.Public, t.Target, p.Target))
	}
	image := lab.Alias("tunnel-client")
	man, err := tmpl.Render("tunnel.yaml.tmpl", map[string]any{"Namespace": t.Client.Namespace, "Deployment": t.Client.Deployment,
		"Key": string(u.sshKey), "KnownHosts": knownhosts.Line([]string{lanAddr}, key), "Image": image,
		"Forwards": forwards, "Server": lanAddr})
	if err != nil {
		return err
	}
	if err := u.apply(ctx, "tunnel.yaml", man); err != nil {
		return err
	}
	if u.r.Spec.Ingress == nil {
		return nil
	}
	dial, err := u.p.InternetDialer(ctx)
	if err != nil {
		return err
	}
	inet := probe.NewHTTP("internet", fmt.Sprintf("http://%s:%d/", t.Server.PublicAddress, t.Ports[0].Public),
		probe.WithHost(u.r.Spec.Probes.Host), probe.WithMarker(agentpkg.DemoMarker), probe.WithDialer(dial))
	return u.waitProbe(ctx, inet, IntervalInternetPath, "from the Internet vantage point")
}

// ups configures NUT on the UPS master: dummy-ups as the rack's UPS, upsd, and
// upsmon, whose shutdown command halts the machines over SSH in the topology's
// order (with the rack's key and known_hosts) and then the master itself.
func (u *upRun) ups(ctx context.Context) error {
	up := u.r.Spec.UPS
	if up == nil {
		return nil
	}
	n := u.nodes[up.Node]
	var stages [][]string
	for _, st := range up.ShutdownOrder {
		var addrs []string
		for _, name := range st {
			addrs = append(addrs, u.r.Node(name).Address)
		}
		stages = append(stages, addrs)
	}
	data := map[string]any{"Rack": u.r.Metadata.Name, "Name": up.Name, "Node": up.Node, "Stages": stages,
		"Password": sha(u.cert)[:16], "Runtime": int(up.BatteryBudget.Seconds())}
	files := map[string]string{"nut.conf": "/etc/nut/nut.conf", "ups.conf": "/etc/nut/ups.conf", "ups.dev": "/etc/nut/" + up.Name + ".dev",
		"upsd.conf": "/etc/nut/upsd.conf", "upsd.users": "/etc/nut/upsd.users", "upsmon.conf": "/etc/nut/upsmon.conf",
		"rack-shutdown": "/usr/local/sbin/rackdrill-rack-shutdown"}
	for name, path := range files {
		content, err := tmpl.Render(name, data)
		if err != nil {
			return err
		}
		if err := write(ctx, n, path, content); err != nil {
			return u.fail(ctx, "write "+path, n, err)
		}
	}
	if err := write(ctx, n, "/etc/nut/rackdrill_id", string(u.sshKey)); err != nil {
		return u.fail(ctx, "write the shutdown's key", n, err)
	}
	if err := write(ctx, n, "/etc/nut/known_hosts", u.knownHosts); err != nil {
		return u.fail(ctx, "write the shutdown's known_hosts", n, err)
	}
	// NUT keeps its sockets in /run/nut, which tmpfiles would make at boot; the
	// lab's node image masks systemd-tmpfiles-setup, as kind's does,
	// so each NUT unit makes it, also
	// after the power returns.
	dropIn := "[Service]\nExecStartPre=+/usr/bin/install -d -o root -g nut -m 0770 /run/nut\n"
	for _, unit := range []string{"nut-driver@.service", "nut-server.service", "nut-monitor.service"} {
		if err := write(ctx, n, "/etc/systemd/system/"+unit+".d/rackdrill.conf", dropIn); err != nil {
			return u.fail(ctx, "write the NUT units' drop-in", n, err)
		}
	}
	setup := "chown root:nut /etc/nut/* && chmod 640 /etc/nut/* && chmod 600 /etc/nut/rackdrill_id && " +
		"chmod 755 /usr/local/sbin/rackdrill-rack-shutdown && systemctl daemon-reload && " +
		"systemctl enable --now nut-driver@" + up.Name + " nut-server nut-monitor"
	if err := exec.Run(n.Command(ctx, "sh", "-c", setup)); err != nil {
		return u.fail(ctx, "start NUT", n, err)
	}
	return u.wait(ctx, IntervalUPS, func() error {
		out, err := exec.Output(n.Command(ctx, "upsc", up.Name+"@localhost", "ups.status"))
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(out)) != "OL" {
			return fmt.Errorf("UPS %s reports %q, want OL (online)", up.Name, strings.TrimSpace(string(out)))
		}
		return nil
	})
}
