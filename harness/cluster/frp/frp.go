package frp

import (
	"crypto/rand"
	"embed"
	"encoding/hex"
	"fmt"
	"strconv"

	"rackdrill.dev/rackdrill/harness/internal/render"
	"rackdrill.dev/rackdrill/harness/rackclient"
	"rackdrill.dev/rackdrill/harness/topology"
)

// ServerPort is where frps takes frpc's connection (FRP's default bindPort).
const ServerPort = 7000

//go:embed templates
var templates embed.FS

var tmpl = render.Must(templates, "templates/*.tmpl", nil)

// NewToken is a fresh secret shared by frpc and frps.
func NewToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ServerConfig is frps.toml: frpc's port and the shared token. Every public
// port is allowed: frpc asks for the topology's.
func ServerConfig(token string) string {
	return fmt.Sprintf("# frps of the rack's VPS. Written by rackdrill.\nbindPort = %d\nauth.method = \"token\"\nauth.token = %q\n", ServerPort, token)
}

// ClientManifest is frpc's Secret and Deployment in the tunnel's namespace:
// connecting to frps at server (the VPS as the rack reaches it) with token,
// each of the topology's ports forwarded to the tunnel's target (the ingress
// IP by default), image the frpc image.
func ClientManifest(r *topology.Rack, server, token, image string) (rackclient.Manifest, error) {
	t := r.Spec.Tunnel
	if t == nil || t.Type != topology.TunnelFRP {
		return rackclient.Manifest{}, fmt.Errorf("spec.tunnel.type: frpc is the client of an frp tunnel")
	}
	type port struct {
		Name           string
		Public, Target int
	}
	var ports []port
	for _, p := range t.Ports {
		name := p.Name
		if name == "" {
			name = "port-" + strconv.Itoa(p.Public)
		}
		ports = append(ports, port{name, p.Public, p.Target})
	}
	target := t.Target
	if target == "" && r.Spec.Ingress != nil {
		target = r.Spec.Ingress.IP
	}
	m, err := tmpl.Render("frpc.yaml.tmpl", map[string]any{"Rack": r.Metadata.Name, "Namespace": t.Client.Namespace,
		"Deployment": t.Client.Deployment, "Server": server, "ServerPort": ServerPort, "Token": token, "Ports": ports,
		"Target": target, "Image": image})
	return rackclient.Manifest{Name: "frpc", YAML: m}, err
}
