package containers

// Steps: container runtimes, kubeadm init and joins, every node Ready.

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"

	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/topology"
)

func (u *upRun) kubeNodes() []*node {
	return append(u.withRole(topology.RoleServer), u.withRole(topology.RoleWorker)...)
}

// podsResolv writes the pods' upstream DNS on n: the LAN's gateway, this
// machine's own bridge. The lab is offline and needs no outside name; asking
// there fails fast.
func (u *upRun) podsResolv(ctx context.Context, n *node) error {
	resolv := fmt.Sprintf("nameserver %s\n", u.r.AdminNetwork().Prefix().Addr().Next())
	if err := write(ctx, n, "/etc/rackdrill/resolv.conf", resolv); err != nil {
		return u.fail(ctx, "write the pods' resolv.conf", n, err)
	}
	return nil
}

// nodeLabels are spec.nodes[].labels of node tn as key=value, sorted.
func nodeLabels(tn *topology.Node) []string {
	var labels []string
	for k, v := range tn.Labels {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	return labels
}

// sans are the names every server's API certificate holds: the endpoint and
// spec.controlPlane.tlsSANs.
func (u *upRun) sans() []string {
	cp := u.r.Spec.ControlPlane
	return append([]string{cp.Endpoint.Host}, cp.TLSSANs...)
}

func (u *upRun) runtimes(ctx context.Context) error {
	return u.each(u.kubeNodes(), func(n *node) error {
		if err := u.podsResolv(ctx, n); err != nil {
			return err
		}
		if err := exec.Run(n.Command(ctx, "systemctl", "enable", "--now", "containerd", "rackdrill-preload", "kubelet")); err != nil {
			return u.fail(ctx, "start containerd", n, err)
		}
		return nil
	})
}

func (u *upRun) kubeadmConfig(n *node, init, controlPlane bool) (string, error) {
	cp := u.r.Spec.ControlPlane
	tn := u.r.Node(n.name)
	return tmpl.Render("kubeadm.yaml.tmpl", map[string]any{
		"Init": init, "ControlPlane": controlPlane, "Token": u.token, "CertificateKey": u.cert,
		"Address": tn.Address, "Port": 6443, "Node": n.name, "Rack": u.r.Metadata.Name,
		"Version": u.r.Spec.Kubernetes.Version, "Endpoint": fmt.Sprintf("%s:%d", cp.Endpoint.Host, cp.Endpoint.Port),
		"SANs": u.sans(), "PodSubnet": u.r.Spec.Kubernetes.PodSubnet, "ServiceSubnet": u.r.Spec.Kubernetes.ServiceSubnet,
		"Labels": strings.Join(nodeLabels(tn), ","), "Taints": tn.Taints,
	})
}

func (u *upRun) kubeadm(ctx context.Context, n *node, init, controlPlane bool) error {
	cfg, err := u.kubeadmConfig(n, init, controlPlane)
	if err != nil {
		return err
	}
	if err := write(ctx, n, "/etc/kubernetes/rackdrill-kubeadm.yaml", cfg); err != nil {
		return u.fail(ctx, "write kubeadm config", n, err)
	}
	args := []string{"join", "--config", "/etc/kubernetes/rackdrill-kubeadm.yaml"}
	step := "kubeadm join"
	if init {
		args = []string{"init", "--config", "/etc/kubernetes/rackdrill-kubeadm.yaml", "--upload-certs"}
		step = "kubeadm init"
	}
	if err := exec.Run(n.Command(ctx, "kubeadm", args...)); err != nil {
		return u.fail(ctx, step, n, err)
	}
	return nil
}

func (u *upRun) kubeadmInit(ctx context.Context) error {
	first := u.withRole(topology.RoleServer)[0]
	if err := u.kubeadm(ctx, first, true, true); err != nil {
		return err
	}
	kc, err := exec.Output(first.Command(ctx, "cat", "/etc/kubernetes/admin.conf"))
	if err != nil {
		return u.fail(ctx, "read admin.conf", first, err)
	}
	return os.WriteFile(u.p.kubeconfigPath(), kc, 0o600)
}

// joinServers joins the other servers one at a time, each after etcd is
// healthy again: a member added but never started takes quorum with it.
func (u *upRun) joinServers(ctx context.Context) error {
	servers := u.withRole(topology.RoleServer)
	first := servers[0]
	for _, n := range servers[1:] {
		if err := u.kubeadm(ctx, n, false, true); err != nil {
			return err
		}
		if err := u.etcdHealthyAfter(ctx, first, n); err != nil {
			return err
		}
	}
	return nil
}

// etcdHealthyAfter waits until etcd answers healthy through the first
// server's API after server joined: a member added but never started takes
// quorum with it, so the next server joins only then.
func (u *upRun) etcdHealthyAfter(ctx context.Context, first, joined *node) error {
	if err := u.wait(ctx, IntervalEtcdJoin, func() error {
		_, err := u.kubectl(ctx, "", "get", "--raw", "/readyz/etcd")
		return err
	}); err != nil {
		return u.fail(ctx, "etcd healthy after joining "+joined.name, first, err)
	}
	return nil
}

func (u *upRun) joinWorkers(ctx context.Context) error {
	return u.each(u.withRole(topology.RoleWorker), func(n *node) error { return u.kubeadm(ctx, n, false, false) })
}

func (u *upRun) nodesReady(ctx context.Context) error {
	first := u.withRole(topology.RoleServer)[0]
	want := len(u.kubeNodes())
	err := u.wait(ctx, IntervalNodesReady, func() error {
		out, err := u.kubectl(ctx, "", "get", "nodes",
			"-o", `jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
		if err != nil {
			return err
		}
		ready := strings.Count(string(out), "=True")
		if ready < want {
			return fmt.Errorf("%d of %d nodes Ready:\n%s", ready, want, out)
		}
		return nil
	})
	if err != nil {
		return u.fail(ctx, "nodes Ready", first, err)
	}
	return nil
}
