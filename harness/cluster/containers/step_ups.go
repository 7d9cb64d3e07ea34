package containers

// Step: the UPS (NUT on the master, upsmon's shutdown of the rack).

import (
	"context"
	"fmt"
	"strings"

	"rackdrill.dev/rackdrill/harness/exec"
)

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
