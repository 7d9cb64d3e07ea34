package containers

// Steps: CoreDNS on the workers, MetalLB, the ingress controller; and how
// the lab applies manifests.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/rackclient"
	"rackdrill.dev/rackdrill/harness/topology"
)

// spreadDNS runs CoreDNS's replicas on the workers that run the apps, one
// per node when there are two or more. Where they land is otherwise left to
// chance (the order in which nodes became Ready), and a replica on a server
// makes that server's loss an in-cluster DNS outage: half the queries go to
// the dead pod until the node grace (50 s) takes its endpoint out, or for the
// whole loss when it takes etcd's quorum (seed 000's two servers), and every
// call to a Service by name fails meanwhile. The drills found it; the lab
// keeps DNS with the apps it serves.
func (u *upRun) spreadDNS(ctx context.Context) error {
	patch, err := DNSPlacement(u.r)
	if err != nil || patch == "" {
		return err
	}
	first := u.withRole(topology.RoleServer)[0]
	if _, err := u.kubectl(ctx, "", "-n", "kube-system", "patch", "deployment", "coredns", "--type", "strategic", "-p", patch); err != nil {
		return u.fail(ctx, "place CoreDNS on the workers", first, err)
	}
	if _, err := u.kubectl(ctx, "", "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout", u.p.limit(IntervalAddOn).String()); err != nil {
		return u.fail(ctx, "CoreDNS on the workers", first, err)
	}
	return nil
}

// DNSPlacement is the strategic merge patch of the CoreDNS Deployment that
// places its replicas on rack r's workers ("" when it has none). The lab
// applies it at up, and again after kubeadm upgrade apply, which rewrites the
// Deployment.
func DNSPlacement(r *topology.Rack) (string, error) {
	workers := 0
	for _, n := range r.AppNodes() {
		if n.HasRole(topology.RoleWorker) {
			workers++
		}
	}
	if workers == 0 {
		return "", nil
	}
	return tmpl.Render("coredns-spread.json", map[string]any{"Spread": workers >= 2})
}

// kubectl runs kubectl on the first server with the admin kubeconfig; stdin
// (manifests) when given.
func (u *upRun) kubectl(ctx context.Context, stdin string, args ...string) ([]byte, error) {
	first := u.withRole(topology.RoleServer)[0]
	cmd := first.Command(ctx, "kubectl", append([]string{"--kubeconfig", u.r.Spec.Kubernetes.Distribution.AdminKubeconfig()}, args...)...)
	if stdin != "" {
		cmd.SetStdin(strings.NewReader(stdin))
	}
	return exec.Output(cmd)
}

// apply applies manifests server-side through the API (the VIP), as every
// manifest the harness installs is.
func (u *upRun) apply(ctx context.Context, name, manifests string) error {
	ap, err := u.applier(ctx)
	if err != nil {
		return err
	}
	_, err = ap.Apply(ctx, rackclient.Manifest{Name: name, YAML: manifests})
	return err
}

// applier is the rack's server-side applier, made once the API answers.
func (u *upRun) applier(ctx context.Context) (*rackclient.Applier, error) {
	if u.ap != nil {
		return u.ap, nil
	}
	cfg, err := rackclient.New(u.p, u.r.APIServerURL(), rackclient.OperationsTimeout).Config(ctx)
	if err != nil {
		return nil, err
	}
	if u.ap, err = rackclient.NewApplier(cfg); err != nil {
		return nil, err
	}
	return u.ap, nil
}

// MetalLBManifests are MetalLB's own manifest (metallb-native.yaml of the
// pinned module, from the Go module proxy) and the topology's layer-2 pool.
// The lab and the k3d provider apply the same.
func MetalLBManifests(ctx context.Context, r *topology.Rack) (native, pool string, err error) {
	m := r.Spec.MetalLB
	dir, err := lab.ModuleDir(ctx, "go.universe.tf/metallb@"+lab.MetalLBVersion)
	if err != nil {
		return "", "", fmt.Errorf("MetalLB's manifest: %w", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "config", "manifests", "metallb-native.yaml"))
	if err != nil {
		return "", "", err
	}
	pool, err = tmpl.Render("metallb-config.yaml.tmpl", map[string]any{"Rack": r.Metadata.Name, "Namespace": m.Namespace, "Pool": m.Pool})
	return string(data), pool, err
}

// metallb applies MetalLB (whose images the lab preloads), then the
// topology's pool once the controller's webhook answers.
func (u *upRun) metallb(ctx context.Context) error {
	if u.r.Spec.MetalLB == nil {
		return nil
	}
	native, cfg, err := MetalLBManifests(ctx, u.r)
	if err != nil {
		return err
	}
	if err := u.apply(ctx, "metallb-native.yaml", native); err != nil {
		return err
	}
	// The pool is validated by the controller's webhook, which needs a moment.
	return u.wait(ctx, IntervalAddOn, func() error { return u.apply(ctx, "metallb-config.yaml", cfg) })
}

func (u *upRun) ingress(ctx context.Context) error {
	in := u.r.Spec.Ingress
	if in == nil {
		return nil
	}
	if in.Controller != "traefik" {
		return fmt.Errorf("spec.ingress.controller: the lab runs traefik (ingress-nginx cannot be built offline), not %s", in.Controller)
	}
	onVIP := u.r.IngressOnVIP()
	man, err := tmpl.Render("traefik.yaml.tmpl", map[string]any{"Rack": u.r.Metadata.Name, "Namespace": in.Namespace,
		"Service": in.Service, "IP": in.IP, "Image": "docker.io/library/traefik:" + lab.TraefikVersion, "HostNetwork": onVIP})
	if err != nil {
		return err
	}
	if err := u.apply(ctx, "traefik.yaml", man); err != nil {
		return err
	}
	if onVIP {
		// Every node's traefik on its host network; the VIP's holder answers.
		_, err := u.kubectl(ctx, "", "-n", in.Namespace, "rollout", "status", "daemonset/traefik", "--timeout", u.p.limit(IntervalAddOn).String())
		if err != nil {
			return u.fail(ctx, "traefik on every node", u.withRole(topology.RoleServer)[0], err)
		}
		return nil
	}
	return u.wait(ctx, IntervalAddOn, func() error {
		out, err := u.kubectl(ctx, "", "-n", in.Namespace, "get", "service", in.Service, "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(out)) != in.IP {
			return fmt.Errorf("ingress Service %s/%s has address %q, want %s", in.Namespace, in.Service, out, in.IP)
		}
		return nil
	})
}
