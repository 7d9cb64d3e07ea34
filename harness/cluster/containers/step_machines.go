package containers

// Steps: preflight, the machines, and waiting for systemd on each.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	mobynet "github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"

	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/topology"
)

// nodeImage finds the node image of the rack's release: the default
// release's is built by `make images`; another release's (a rack that runs
// v1.33.6, rehearse --from) is built here, derived from that release.
func (u *upRun) nodeImage(ctx context.Context, dc *client.Client) error {
	version := u.r.Spec.Kubernetes.Version
	if _, err := lab.ReleaseOf(ctx, version); err != nil {
		return fmt.Errorf("spec.kubernetes.version %s: %w", version, err)
	}
	name := lab.NodeImage(version)
	var err error
	if u.image, err = lab.ContentTag(name); err != nil {
		return err
	}
	if _, err := dc.ImageInspect(ctx, u.image); err == nil {
		return nil
	}
	if name == lab.NodeImage(lab.KubernetesVersion) {
		return fmt.Errorf("the node image %s is not built: run `make images` first", u.image)
	}
	u.p.step(fmt.Sprintf("spec.kubernetes.version %s: building its node image %s (the lab's default is %s)", version, name, lab.KubernetesVersion))
	b, err := u.p.builder()
	if err != nil {
		return err
	}
	if _, err := b.Build(ctx, name); err != nil {
		return fmt.Errorf("spec.kubernetes.version %s: %w", version, err)
	}
	return nil
}

// k3sImage finds the lab's k3s image (the node image with K3s built from
// source), building it when it is missing: only a K3s rack needs it.
func (u *upRun) k3sImage(ctx context.Context, dc *client.Client) error {
	if v := u.r.Spec.Kubernetes.Version; v != lab.K3sVersion {
		return fmt.Errorf("spec.kubernetes.version %s: the lab builds K3s %s from source (docs/lab.md, \"K3s in the lab, from source\"): write that version", v, lab.K3sVersion)
	}
	var err error
	if u.image, err = lab.ContentTag("k3s"); err != nil {
		return err
	}
	if _, err := dc.ImageInspect(ctx, u.image); err == nil {
		return nil
	}
	u.p.step(fmt.Sprintf("spec.kubernetes.distribution k3s: building the k3s image %s (cold: about 13 minutes on 2 cores)", u.image))
	b, err := u.p.builder()
	if err != nil {
		return err
	}
	if _, err := b.Build(ctx, "k3s"); err != nil {
		return fmt.Errorf("spec.kubernetes.distribution k3s: %w", err)
	}
	return nil
}

func (u *upRun) preflight(ctx context.Context) error {
	dc, err := u.p.client(ctx)
	if err != nil {
		return err
	}
	existing, err := u.p.Nodes(ctx)
	if err != nil {
		return err
	}
	if len(existing) > 0 {
		return fmt.Errorf("rack %s already has %d machines: `rackdrill down` first (or `rackdrill status`)", u.r.Metadata.Name, len(existing))
	}
	if u.isK3s() {
		err = u.k3sImage(ctx, dc)
	} else {
		err = u.nodeImage(ctx, dc)
	}
	if err != nil {
		return err
	}
	if t := u.r.Spec.Tunnel; t != nil && t.Type == topology.TunnelFRP {
		// FRP is built only for a rack that runs it (seconds once cached).
		b, err := u.p.builder()
		if err != nil {
			return err
		}
		if _, err := b.Build(ctx, "frpc"); err != nil {
			return fmt.Errorf("spec.tunnel.type frp: %w", err)
		}
		if u.frps, err = b.FRPS(ctx); err != nil {
			return fmt.Errorf("spec.tunnel.type frp: %w", err)
		}
	}
	if err := os.MkdirAll(u.p.artifacts, 0o755); err != nil {
		return err
	}
	buf := make([]byte, 32)
	_, _ = rand.Read(buf)
	u.cert = hex.EncodeToString(buf)
	u.token = hex.EncodeToString(buf[:3]) + "." + hex.EncodeToString(buf[3:11])
	return nil
}

// machines starts every node container at once, with the flags that replace
// --privileged, which fails on machines whose capability bounding set lacks
// CAP_SYS_RESOURCE (a VM's Docker, often).
func (u *upRun) machines(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(u.r.Spec.Nodes))
	for i := range u.r.Spec.Nodes {
		tn := u.r.Spec.Nodes[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = u.machine(ctx, tn)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (u *upRun) machine(ctx context.Context, tn topology.Node) error {
	var roles []string
	for _, r := range tn.Roles {
		roles = append(roles, string(r))
	}
	netName := u.nets[tn.Network]
	addr := tn.Addr()
	networks := []string{netName}
	// The machine's addresses on the rack's other networks (seed 000's
	// storage and internode VLANs), each at its documented address.
	fixed := map[string]netip.Addr{}
	for _, a := range tn.Addresses {
		name := u.nets[a.Network]
		networks = append(networks, name)
		fixed[name], _ = netip.ParseAddr(a.Address)
	}
	if t := u.r.Spec.Tunnel; t != nil && t.Server.Node == tn.Name && tn.Network != u.r.AdminNetwork().Name {
		// The VPS has a leg on the LAN too: a LAN client reaches a VPS through
		// its router's NAT in real life, and Docker isolates bridges. Nothing on
		// the Internet network routes through it: its default route stays there.
		networks = append(networks, u.nets[u.r.AdminNetwork().Name])
	}
	labels := map[string]string{LabelRack: u.r.Metadata.Name, LabelNode: tn.Name,
		LabelRoles: strings.Join(roles, ","), LabelAddress: tn.Address}
	req := testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:          u.image,
			Name:           u.r.Metadata.Name + "-" + tn.Name,
			Labels:         labels,
			Networks:       networks[:1],
			NetworkAliases: map[string][]string{netName: {tn.Name}},
			Tmpfs:          map[string]string{"/tmp": "", "/run": "", "/run/lock": ""},
			ConfigModifier: func(c *container.Config) {
				c.Hostname = tn.Name
				c.Tty = true
			},
			HostConfigModifier: func(h *container.HostConfig) {
				// --privileged fails here (no CAP_SYS_RESOURCE in the VM's
				// bounding set); this is its equivalent that works.
				h.CapAdd = []string{"ALL"}
				h.CapDrop = []string{"SYS_RESOURCE"}
				h.SecurityOpt = []string{"seccomp=unconfined", "apparmor=unconfined"}
				// The CLI's --security-opt systempaths=unconfined: nothing masked
				// or read-only under /proc and /sys (empty, not nil, overrides).
				h.MaskedPaths = []string{}
				h.ReadonlyPaths = []string{}
				h.DeviceCgroupRules = []string{"a *:* rwm"}
				h.Devices = []container.DeviceMapping{{PathOnHost: "/dev/kmsg", PathInContainer: "/dev/kmsg", CgroupPermissions: "rwm"}}
				h.CgroupnsMode = container.CgroupnsModePrivate
				h.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyDisabled}
				// /var on a volume of its own: containerd's overlayfs cannot sit on
				// the container's own overlay. Named and labelled, so Down finds it.
				h.Mounts = append(h.Mounts, mount.Mount{Type: mount.TypeVolume, Source: u.r.Metadata.Name + "-" + tn.Name + "-var",
					Target: "/var", VolumeOptions: &mount.VolumeOptions{Labels: labels}})
				// The NAS's exports too: nfs-ganesha's VFS backend needs file
				// handles, which the container's overlay root does not give.
				if nfs := u.r.Spec.Storage; nfs != nil && nfs.NFS != nil && nfs.NFS.Node == tn.Name {
					for i, e := range nfs.NFS.Exports {
						h.Mounts = append(h.Mounts, mount.Mount{Type: mount.TypeVolume, Source: fmt.Sprintf("%s-%s-export%d", u.r.Metadata.Name, tn.Name, i),
							Target: e, VolumeOptions: &mount.VolumeOptions{Labels: labels}})
					}
				}
			},
			EndpointSettingsModifier: func(m map[string]*mobynet.EndpointSettings) {
				if es, ok := m[netName]; ok {
					es.IPAMConfig = &mobynet.EndpointIPAMConfig{IPv4Address: addr}
				}
			},
		},
		Started: true,
	}
	c, err := testcontainers.GenericContainer(ctx, req)
	if err != nil {
		return &UpError{Step: "start machine", Node: tn.Name, Err: err}
	}
	// Further networks are connected here, not by testcontainers-go, which
	// ignores a failure to find them.
	for _, extra := range networks[1:] {
		dc, err := u.p.client(ctx)
		if err != nil {
			return err
		}
		opts := client.NetworkConnectOptions{Container: c.GetContainerID()}
		if a, ok := fixed[extra]; ok {
			opts.EndpointConfig = &mobynet.EndpointSettings{IPAMConfig: &mobynet.EndpointIPAMConfig{IPv4Address: a}}
		}
		if _, err := dc.NetworkConnect(ctx, extra, opts); err != nil {
			return &UpError{Step: "connect machine to network " + extra, Node: tn.Name, Err: err}
		}
	}
	n := &node{p: u.p, id: c.GetContainerID(), name: tn.Name, roles: tn.Roles, addr: addr}
	u.mu.Lock()
	u.nodes[tn.Name] = n
	u.mu.Unlock()
	return nil
}

func (u *upRun) boot(ctx context.Context) error {
	return u.each(u.all(), func(n *node) error {
		// systemd answers only once D-Bus is up; until then it says so, and
		// `--wait` gives up at once. "degraded" is fine: a unit of a role the
		// machine does not hold may fail.
		var state string
		err := u.wait(ctx, IntervalBoot, func() error {
			out, _ := exec.Output(n.Command(ctx, "systemctl", "is-system-running", "--wait"))
			state = strings.TrimSpace(string(out))
			if state == "running" || state == "degraded" {
				return nil
			}
			return fmt.Errorf("systemd is %q", state)
		})
		if err != nil {
			return u.fail(ctx, "boot", n, err)
		}
		return nil
	})
}
