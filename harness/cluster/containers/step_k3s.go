package containers

// Steps of a K3s rack (spec.kubernetes.distribution: k3s): its servers with
// embedded etcd, its agents, CoreDNS. The machines run the lab's k3s image,
// whose k3s and k3s-agent units, as K3s's installer writes them, read their
// flags from /etc/rancher/k3s/config.yaml.

import (
	"context"
	"fmt"
	"net/netip"
	"os"

	"k8s.io/client-go/tools/clientcmd"

	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/topology"
)

func (u *upRun) isK3s() bool { return u.r.Spec.Kubernetes.Distribution == topology.DistributionK3s }

// clusterDNS is the Service address of CoreDNS: the tenth of the service
// range, as kubeadm and K3s both place it.
func clusterDNS(serviceSubnet string) (string, error) {
	p, err := netip.ParsePrefix(serviceSubnet)
	if err != nil {
		return "", fmt.Errorf("spec.kubernetes.serviceSubnet: %w", err)
	}
	a := p.Masked().Addr()
	for range 10 {
		a = a.Next()
	}
	return a.String(), nil
}

// k3sConfig is node n's /etc/rancher/k3s/config.yaml. server is the URL it
// joins through ("" for the first server, which starts etcd).
func (u *upRun) k3sConfig(n *node, server string) (string, error) {
	k := u.r.Spec.Kubernetes
	tn := u.r.Node(n.name)
	dns, err := clusterDNS(k.ServiceSubnet)
	if err != nil {
		return "", err
	}
	mode := "agent"
	if tn.HasRole(topology.RoleServer) {
		mode = "server"
	}
	return tmpl.Render("k3s-config.yaml", map[string]any{
		"Mode": mode, "Node": n.name, "Rack": u.r.Metadata.Name, "Address": tn.Address,
		// K3s's shared secret: the random one kubeadm takes as its certificate
		// key (kubeadm's token, id.secret, is a bootstrap token to K3s).
		"Token":       u.cert,
		"ClusterInit": server == "", "Server": server, "SANs": u.sans(),
		"PodSubnet": k.PodSubnet, "ServiceSubnet": k.ServiceSubnet, "ClusterDNS": dns,
		"PauseImage": "registry.k8s.io/pause:" + lab.DefaultRelease.Pause, "Labels": nodeLabels(tn), "Taints": tn.Taints,
	})
}

// k3sResolv gives the pods their upstream DNS, as runtimes does on kubeadm;
// K3s imports the preloaded images itself when it starts.
func (u *upRun) k3sResolv(ctx context.Context) error {
	return u.each(u.kubeNodes(), func(n *node) error { return u.podsResolv(ctx, n) })
}

// k3sStart writes n's config and starts its unit (k3s or k3s-agent) without
// waiting for it: a joining server reports ready only once etcd has it.
func (u *upRun) k3sStart(ctx context.Context, n *node, server string) error {
	cfg, err := u.k3sConfig(n, server)
	if err != nil {
		return err
	}
	if err := write(ctx, n, "/etc/rancher/k3s/config.yaml", cfg); err != nil {
		return u.fail(ctx, "write K3s's config.yaml", n, err)
	}
	unit := "k3s-agent"
	if u.r.Node(n.name).HasRole(topology.RoleServer) {
		unit = "k3s"
	}
	if err := exec.Run(n.Command(ctx, "systemctl", "enable", "--now", "--no-block", unit)); err != nil {
		return u.fail(ctx, "start "+unit, n, err)
	}
	return nil
}

// k3sRegistered waits until node name is in the API (NotReady is fine: the pod
// network comes after every node is in).
func (u *upRun) k3sRegistered(ctx context.Context, at *node, name string) error {
	err := u.wait(ctx, IntervalEtcdJoin, func() error {
		_, err := u.kubectl(ctx, "", "get", "node", name)
		return err
	})
	if err != nil {
		return u.fail(ctx, name+" registered with the API", at, err)
	}
	return nil
}

// k3sInit starts the first server with --cluster-init (K3s's embedded etcd)
// and writes the admin kubeconfig, pointed at the control-plane endpoint.
func (u *upRun) k3sInit(ctx context.Context) error {
	first := u.withRole(topology.RoleServer)[0]
	if err := u.k3sStart(ctx, first, ""); err != nil {
		return err
	}
	if err := u.k3sRegistered(ctx, first, first.name); err != nil {
		return err
	}
	kc, err := exec.Output(first.Command(ctx, "cat", topology.DistributionK3s.AdminKubeconfig()))
	if err != nil {
		return u.fail(ctx, "read k3s.yaml", first, err)
	}
	cfg, err := clientcmd.Load(kc)
	if err != nil {
		return u.fail(ctx, "read k3s.yaml", first, err)
	}
	for _, c := range cfg.Clusters {
		c.Server = u.r.APIServerURL()
	}
	if kc, err = clientcmd.Write(*cfg); err != nil {
		return err
	}
	return os.WriteFile(u.p.kubeconfigPath(), kc, 0o600)
}

// k3sJoinServers joins the other servers through the first's API, as seed
// 004 does, one at a time, each once it is in the API and etcd is healthy.
func (u *upRun) k3sJoinServers(ctx context.Context) error {
	servers := u.withRole(topology.RoleServer)
	first := servers[0]
	url := fmt.Sprintf("https://%s:6443", first.addr)
	for _, n := range servers[1:] {
		if err := u.k3sStart(ctx, n, url); err != nil {
			return err
		}
		if err := u.k3sRegistered(ctx, first, n.name); err != nil {
			return err
		}
		if err := u.etcdHealthyAfter(ctx, first, n); err != nil {
			return err
		}
	}
	return nil
}

// k3sJoinAgents starts every agent through the control-plane endpoint (the
// load balancer), as seed 004 tells agents to.
func (u *upRun) k3sJoinAgents(ctx context.Context) error {
	first := u.withRole(topology.RoleServer)[0]
	return u.each(u.withRole(topology.RoleWorker), func(n *node) error {
		if err := u.k3sStart(ctx, n, u.r.APIServerURL()); err != nil {
			return err
		}
		return u.k3sRegistered(ctx, first, n.name)
	})
}

// k3sDNS deploys CoreDNS from the node image's preload (K3s's own is
// disabled), then places it as on kubeadm.
func (u *upRun) k3sDNS(ctx context.Context) error {
	dns, err := clusterDNS(u.r.Spec.Kubernetes.ServiceSubnet)
	if err != nil {
		return err
	}
	man, err := tmpl.Render("coredns.yaml", map[string]any{"Rack": u.r.Metadata.Name, "ClusterDNS": dns,
		"Image": "registry.k8s.io/coredns/coredns:" + lab.DefaultRelease.CoreDNS})
	if err != nil {
		return err
	}
	if err := u.apply(ctx, "coredns.yaml", man); err != nil {
		return err
	}
	return u.spreadDNS(ctx)
}
