package containers

// Step: the pod network (ptp and host-local, routes between the nodes).

import (
	"context"
	"fmt"
	"strings"

	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/topology"
)

// podNetwork gives every Kubernetes node Debian's ptp plugin with host-local
// addresses from its podCIDR, and routes to every other node's podCIDR, kept in
// a file a unit replays at boot (a restarted container has a new network
// namespace).
func (u *upRun) podNetwork(ctx context.Context) error {
	first := u.withRole(topology.RoleServer)[0]
	u.podCIDRs = map[string]string{}
	err := u.wait(ctx, IntervalPodCIDRs, func() error {
		out, err := u.kubectl(ctx, "", "get", "nodes",
			"-o", `jsonpath={range .items[*]}{.metadata.name}={.spec.podCIDR}{"\n"}{end}`)
		if err != nil {
			return err
		}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			name, cidr, _ := strings.Cut(l, "=")
			if cidr == "" {
				return fmt.Errorf("node %s has no podCIDR yet", name)
			}
			u.podCIDRs[name] = cidr
		}
		if len(u.podCIDRs) < len(u.kubeNodes()) {
			return fmt.Errorf("%d of %d nodes registered", len(u.podCIDRs), len(u.kubeNodes()))
		}
		return nil
	})
	if err != nil {
		return u.fail(ctx, "read podCIDRs", first, err)
	}
	return u.each(u.kubeNodes(), func(n *node) error {
		type route struct{ CIDR, Via string }
		data := struct {
			PodCIDR, PodSubnet string
			Routes             []route
		}{PodCIDR: u.podCIDRs[n.name], PodSubnet: u.r.Spec.Kubernetes.PodSubnet}
		for _, other := range u.kubeNodes() {
			if other.name != n.name {
				data.Routes = append(data.Routes, route{u.podCIDRs[other.name], other.addr.String()})
			}
		}
		files := map[string]string{"/etc/cni/net.d/10-rackdrill.conflist": "cni.conflist",
			"/usr/local/bin/rackdrill-routes": "routes.sh", "/etc/systemd/system/rackdrill-routes.service": "routes.service"}
		for path, name := range files {
			content, err := tmpl.Render(name, data)
			if err != nil {
				return err
			}
			if err := write(ctx, n, path, content); err != nil {
				return u.fail(ctx, "write "+path, n, err)
			}
		}
		if err := exec.Run(n.Command(ctx, "sh", "-c", "chmod +x /usr/local/bin/rackdrill-routes && systemctl daemon-reload && systemctl enable --now rackdrill-routes")); err != nil {
			return u.fail(ctx, "pod routes", n, err)
		}
		return nil
	})
}
