package k3d

import (
	"context"
	"embed"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"rackdrill.dev/rackdrill/harness/cluster/containers"
	"rackdrill.dev/rackdrill/harness/cluster/frp"
	"rackdrill.dev/rackdrill/harness/internal/render"
	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/probe"
	"rackdrill.dev/rackdrill/harness/rackclient"
	"rackdrill.dev/rackdrill/harness/topology"
)

// The images a k3d rack pulls from the Internet, pinned.
const (
	FRPSImage           = "docker.io/fatedier/frps:" + lab.FRPVersion
	FRPCImage           = "docker.io/fatedier/frpc:" + lab.FRPVersion
	NFSServerImage      = "docker.io/erichough/nfs-server:2.2.1"
	CSINFSImage         = "registry.k8s.io/sig-storage/nfsplugin:v4.11.0"
	CSIProvisionerImage = "registry.k8s.io/sig-storage/csi-provisioner:v5.2.0"
	CSIRegistrarImage   = "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.13.0"
)

//go:embed templates
var templates embed.FS

var tmpl = render.Must(templates, "templates/*.tmpl", nil)

// Manifest is one file of what the provider applies.
type Manifest = rackclient.Manifest

// VPSRackAddress is the VPS's (frps's) address on the k3d network, .230 of
// it (Docker gives k3d's nodes the low addresses): the rack reaches the VPS
// there, as a real rack reaches its VPS over the Internet; the public side is
// the topology's address on the internet network.
func VPSRackAddress(r *topology.Rack) (netip.Addr, error) {
	admin := r.AdminNetwork()
	if admin == nil {
		return netip.Addr{}, fmt.Errorf("spec.networks: no admin network")
	}
	pfx, err := netip.ParsePrefix(admin.CIDR)
	if err != nil {
		return netip.Addr{}, err
	}
	a := pfx.Masked().Addr()
	for range 230 {
		a = a.Next()
	}
	if !pfx.Contains(a) {
		return netip.Addr{}, fmt.Errorf("spec.networks: the admin network %s is too small for the VPS's address .230", admin.CIDR)
	}
	return a, nil
}

// Manifests are what Install applies, in order: MetalLB and its pool, the
// NFS CSI driver with the documented StorageClasses, the tunnel client. token
// is frpc's secret with frps.
func Manifests(ctx context.Context, r *topology.Rack, token string) ([]Manifest, error) {
	var out []Manifest
	if r.Spec.MetalLB != nil {
		native, pool, err := containers.MetalLBManifests(ctx, r)
		if err != nil {
			return nil, err
		}
		out = append(out, Manifest{Name: "metallb-native", YAML: native}, Manifest{Name: "metallb-pool", YAML: pool})
	}
	if st := r.Spec.Storage; st != nil && st.NFS != nil {
		var classes []topology.StorageClass
		for _, sc := range st.StorageClasses {
			if sc.Server == "" {
				sc.Server = r.NFSAddress()
			}
			if sc.Share == "" {
				sc.Share = st.NFS.Exports[0]
			}
			classes = append(classes, sc)
		}
		m, err := tmpl.Render("csi-nfs.yaml.tmpl", map[string]any{"Plugin": CSINFSImage, "Provisioner": CSIProvisionerImage,
			"Registrar": CSIRegistrarImage, "StorageClasses": classes})
		if err != nil {
			return nil, err
		}
		out = append(out, Manifest{Name: "csi-nfs", YAML: m})
	}
	if t := r.Spec.Tunnel; t != nil {
		if t.Type != topology.TunnelFRP {
			return nil, fmt.Errorf("spec.tunnel.type: the k3d rack runs FRP, not %s", t.Type)
		}
		server, err := VPSRackAddress(r)
		if err != nil {
			return nil, err
		}
		m, err := frp.ClientManifest(r, server.String(), token, FRPCImage)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// NewToken is a fresh secret shared by frpc and frps.
func NewToken() string { return frp.NewToken() }

// Install applies the manifests (server-side apply), gives K3s's Traefik the
// documented ingress IP and deploys the probe workloads on the NFS
// StorageClass.
func Install(ctx context.Context, r *topology.Rack, kubeconfig, token, agentImage string, log logr.Logger) error {
	ms, err := Manifests(ctx, r, token)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(kubeconfig)
	if err != nil {
		return err
	}
	cfg, err := rackclient.OperationsConfig(data, "", rackclient.OperationsTimeout)
	if err != nil {
		return err
	}
	ap, err := rackclient.NewApplier(cfg)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if err := ApplyAll(ctx, ap, ms, log); err != nil {
		return err
	}
	if err := IngressIP(ctx, cs, r); err != nil {
		return err
	}
	wc := probe.WorkloadConfig{Namespace: r.Spec.Probes.Namespace, Image: agentImage, IngressHost: r.Spec.Probes.Host, IngressClass: "traefik"}
	if st := r.Spec.Storage; st != nil && len(st.StorageClasses) > 0 {
		wc.StorageClass = st.StorageClasses[0].Name
	}
	return probe.Deploy(ctx, ap, wc)
}

// ApplyAll applies the manifests in order, each retried for a while: a CRD's
// webhook (MetalLB's) takes a moment to answer.
func ApplyAll(ctx context.Context, ap *rackclient.Applier, ms []Manifest, log logr.Logger) error {
	for _, m := range ms {
		log.Info("applying", "manifest", m.Name)
		if err := containers.Poll(ctx, 3*time.Minute, func() error { _, err := ap.Apply(ctx, m); return err }); err != nil {
			return fmt.Errorf("apply %s: %w", m.Name, err)
		}
	}
	return nil
}

// IngressIP gives the ingress controller's Service (K3s's Traefik, which K3s
// installs itself) the documented address from MetalLB's pool.
func IngressIP(ctx context.Context, cs kubernetes.Interface, r *topology.Rack) error {
	in := r.Spec.Ingress
	if in == nil {
		return nil
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{"metallb.io/loadBalancerIPs":%q}}}`, in.IP)
	if err := containers.Poll(ctx, 5*time.Minute, func() error {
		_, err := cs.CoreV1().Services(in.Namespace).Patch(ctx, in.Service, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: rackclient.FieldManager})
		return err
	}); err != nil {
		return fmt.Errorf("give the ingress Service %s/%s the ingress IP %s: %w", in.Namespace, in.Service, in.IP, err)
	}
	return nil
}
