package containers

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"rackdrill.dev/rackdrill/harness/poll"
)

// freezer is one freezer hierarchy of a machine: its cgroup folder, the
// file that freezes it, and the values it takes.
type freezer struct {
	dir, file    string
	frozen, thaw string // frozen "" (v1): anything but thaw is frozen or freezing
}

// freezers finds the machine's freezer cgroups from /proc of its init (pid,
// 0 when it does not run), so only where the Docker daemon runs on this
// machine (the lab's case). It is read before a kill: a killed init's cgroups
// are no longer listed.
func (n *node) freezers(pid int) ([]freezer, error) {
	if pid == 0 {
		return nil, nil
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil, fmt.Errorf("the machine's cgroups (is the Docker daemon on this machine?): %w", err)
	}
	var out []freezer
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		dir := machineCgroup(f[2], n.id)
		switch {
		case dir == "":
		case strings.Contains(","+f[1]+",", ",freezer,"): // cgroup v1
			out = append(out, freezer{dir: filepath.Join("/sys/fs/cgroup/freezer", dir), file: "freezer.state", thaw: "THAWED"})
		case f[0] == "0" && f[1] == "": // cgroup v2
			out = append(out, freezer{dir: filepath.Join("/sys/fs/cgroup", dir), file: "cgroup.freeze", frozen: "1", thaw: "0"})
		}
	}
	return out, nil
}

// thaw thaws every frozen cgroup inside the machine: runc freezes a pod
// container's cgroup while it applies its settings, and a machine killed in
// that moment cannot die (its init waits, a zombie, for the frozen process;
// Docker gives up after 10 s). It returns the cgroups it thawed.
func thaw(fzs []freezer) ([]string, error) {
	var thawed []string
	var errs []error
	for _, fz := range fzs {
		_ = filepath.WalkDir(fz.dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != fz.file {
				return nil // a cgroup gone while walking: nothing to thaw
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return nil
			}
			s := strings.TrimSpace(string(b))
			if (fz.frozen != "" && s == fz.frozen) || (fz.frozen == "" && s != fz.thaw) {
				if err := os.WriteFile(path, []byte(fz.thaw), 0o644); err != nil {
					errs = append(errs, fmt.Errorf("thaw %s: %w", filepath.Dir(path), err))
					return nil
				}
				thawed = append(thawed, filepath.Dir(path))
			}
			return nil
		})
	}
	return thawed, errors.Join(errs...)
}

// machineCgroup is the machine's own cgroup in the path of its init's
// (which may be a child, systemd's init.scope): the path up to the segment
// that names the container ("/docker/<id>", "/system.slice/docker-<id>.scope").
func machineCgroup(path, id string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if strings.Contains(p, id) {
			return strings.Join(parts[:i+1], "/")
		}
	}
	return ""
}

// heldExitLimit is how long a machine whose frozen cgroups were thawed may
// take to exit.
const heldExitLimit = 15 * time.Second

// thawHeld is Kill's and Stop's answer to Docker failing op with err: when a
// frozen cgroup inside the machine held it up, the cgroups are thawed and the
// machine is waited for until it exits; otherwise err stands.
func (n *node) thawHeld(ctx context.Context, op string, fzs []freezer, err error) error {
	thawed, terr := thaw(fzs)
	if len(thawed) == 0 {
		return n.wrap(op, errors.Join(err, terr))
	}
	werr := poll.Until(ctx, 200*time.Millisecond, heldExitLimit, func() (bool, error) {
		running, err := n.Running(ctx)
		return !running, err
	})
	if werr != nil {
		return n.wrap(op, errors.Join(err, fmt.Errorf("thawed %s, the machine did not exit: %w", strings.Join(thawed, ", "), werr)))
	}
	n.p.log.Info("Docker's "+op+" waited on a frozen cgroup inside the machine; thawed, the machine is down", "node", n.name, "thawed", thawed, "docker said", err.Error())
	return nil
}
