package containers

// Step: the reverse tunnel to the VPS.

import (
	"context"
	"fmt"

	"github.com/moby/moby/client"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

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
