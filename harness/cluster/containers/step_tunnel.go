package containers

// Step: the reverse tunnel to the VPS.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/moby/moby/client"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"rackdrill.dev/rackdrill/harness/cluster/frp"
	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/probe"
	agentpkg "rackdrill.dev/rackdrill/harness/probe/agent"
	"rackdrill.dev/rackdrill/harness/topology"
)

// tunnel starts the tunnel client Deployment: ssh -R from the VPS's public
// ports to the target (the ingress IP), with the rack's key and the VPS's host
// key pinned; then waits until the demo app answers from the Internet side.
func (u *upRun) tunnel(ctx context.Context) error {
	t := u.r.Spec.Tunnel
	if t == nil {
		return nil
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
	switch t.Type {
	case topology.TunnelFRP:
		if err := u.frpTunnel(ctx, vps, lanAddr); err != nil {
			return err
		}
	case topology.TunnelSSH:
		if err := u.sshTunnel(ctx, vps, lanAddr); err != nil {
			return err
		}
	default:
		return fmt.Errorf("spec.tunnel.type: the lab runs frp or ssh, not %s", t.Type)
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

// sshTunnel is the lab's stand-in for frpc: ssh -R from the VPS's public
// ports to the target, the rack's key, the VPS's host key pinned.
func (u *upRun) sshTunnel(ctx context.Context, vps *node, lanAddr string) error {
	t := u.r.Spec.Tunnel
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
	return u.apply(ctx, "tunnel.yaml", man)
}

// frpTunnel is FRP, built here (the frpc image, preflight): frps on the VPS
// as a systemd service, its binary copied there as a VPS's owner installs
// it; frpc in the cluster, its image imported into every node's containerd,
// connecting to the VPS's LAN leg (the rack's way to its VPS).
func (u *upRun) frpTunnel(ctx context.Context, vps *node, lanAddr string) error {
	bin, err := os.ReadFile(u.frps)
	if err != nil {
		return err
	}
	unit, err := tmpl.Render("frps.service.tmpl", map[string]any{"Rack": u.r.Metadata.Name})
	if err != nil {
		return err
	}
	token := frp.NewToken()
	for path, content := range map[string]string{"/usr/local/bin/frps": string(bin), "/etc/frp/frps.toml": frp.ServerConfig(token),
		"/etc/systemd/system/frps.service": unit} {
		if err := write(ctx, vps, path, content); err != nil {
			return u.fail(ctx, "install frps", vps, err)
		}
	}
	if err := exec.Run(vps.Command(ctx, "sh", "-c", "chmod 0755 /usr/local/bin/frps && chmod 0600 /etc/frp/frps.toml && systemctl daemon-reload && systemctl enable --now frps")); err != nil {
		return u.fail(ctx, "start frps", vps, err)
	}
	image := lab.Alias("frpc")
	dc, err := u.p.client(ctx)
	if err != nil {
		return err
	}
	rc, err := dc.ImageSave(ctx, []string{image})
	if err != nil {
		return fmt.Errorf("save the frpc image %s: %w", image, err)
	}
	saved, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return fmt.Errorf("save the frpc image %s: %w", image, err)
	}
	if err := u.each(u.kubeNodes(), func(n *node) error {
		cmd := n.Command(ctx, "ctr", "-n", "k8s.io", "images", "import", "-").SetStdin(bytes.NewReader(saved))
		if err := exec.Run(cmd); err != nil {
			return u.fail(ctx, "import the frpc image", n, err)
		}
		return nil
	}); err != nil {
		return err
	}
	man, err := frp.ClientManifest(u.r, lanAddr, token, image)
	if err != nil {
		return err
	}
	return u.apply(ctx, man.Name, man.YAML)
}
