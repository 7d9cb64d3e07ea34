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
	// after the power returns. upsd has no Restart= of its own: one failed
	// start would leave the UPS unserved until someone restarts it.
	dropIn := "[Service]\nExecStartPre=+/usr/bin/install -d -o root -g nut -m 0770 /run/nut\n"
	for _, unit := range []string{"nut-driver@.service", "nut-server.service", "nut-monitor.service"} {
		content := dropIn
		if unit == "nut-server.service" {
			content += "Restart=on-failure\nRestartSec=2s\n"
		}
		if err := write(ctx, n, "/etc/systemd/system/"+unit+".d/rackdrill.conf", content); err != nil {
			return u.fail(ctx, "write the NUT units' drop-in", n, err)
		}
	}
	// Writing ups.conf triggers Debian's nut-driver-enumerator.path, whose
	// script registers the driver units and restarts upsd in the background,
	// racing the start below. The enumerator runs here, to its end, first.
	setup := "chown root:nut /etc/nut/* && chmod 640 /etc/nut/* && chmod 600 /etc/nut/rackdrill_id && " +
		"chmod 755 /usr/local/sbin/rackdrill-rack-shutdown && systemctl daemon-reload && " +
		"systemctl start nut-driver-enumerator.service && " +
		"systemctl enable --now nut-driver@" + up.Name + " nut-server nut-monitor"
	if err := exec.Run(n.Command(ctx, "sh", "-c", setup)); err != nil {
		return u.fail(ctx, "start NUT", n, err)
	}
	units := []string{"nut-driver@" + up.Name, "nut-server", "nut-monitor"}
	err := u.wait(ctx, IntervalUPS, func() error {
		// upsd listens on IPv4 only (upsd.conf): asking 127.0.0.1, not
		// localhost, so that its error is not the ::1 attempt's.
		out, err := exec.Output(n.Command(ctx, "upsc", up.Name+"@127.0.0.1", "ups.status"))
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(out)) != "OL" {
			return fmt.Errorf("UPS %s reports %q, want OL (online)", up.Name, strings.TrimSpace(string(out)))
		}
		return nil
	})
	if err != nil {
		return u.failUnits(ctx, "wait for the UPS to report online", n, units, err)
	}
	return nil
}

// failUnits is fail with the state of units and their own journal lines,
// which say why a service is not serving better than the machine's last lines.
func (u *upRun) failUnits(ctx context.Context, step string, n *node, units []string, err error) error {
	ctx = context.WithoutCancel(ctx)
	state, _ := exec.Output(n.Command(ctx, "systemctl", append([]string{"is-active"}, units...)...))
	args := []string{"--no-pager", "-n", "30", "-o", "short-monotonic"}
	for _, unit := range units {
		args = append(args, "-u", unit)
	}
	tail, _ := exec.Output(n.Command(ctx, "journalctl", args...))
	var b strings.Builder
	for i, st := range strings.Fields(string(state)) {
		if i < len(units) {
			fmt.Fprintf(&b, "%s: %s\n", units[i], st)
		}
	}
	b.WriteString(strings.TrimSpace(string(tail)))
	return &UpError{Step: step, Node: n.name, Err: err, LogTail: b.String()}
}
