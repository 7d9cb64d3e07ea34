package containers

// Step: the NAS (nfs-ganesha).

import (
	"context"
	"fmt"
	"strings"

	"rackdrill.dev/rackdrill/harness/exec"
)

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
