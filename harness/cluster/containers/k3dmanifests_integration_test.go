package containers_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"rackdrill.dev/rackdrill/harness/cluster/k3d"
	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/probe"
	"rackdrill.dev/rackdrill/harness/rackclient"
	"rackdrill.dev/rackdrill/harness/topology"
)

func labREST(t *testing.T, kubeconfig string) (*rest.Config, kubernetes.Interface) {
	t.Helper()
	data, err := os.ReadFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := rackclient.OperationsConfig(data, "", rackclient.OperationsTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, kubernetes.NewForConfigOrDie(cfg)
}

// k3dManifestsOnLab validates every manifest the k3d provider applies for
// kind-configs/k3d-ha.yaml against a real Kubernetes v1.33 API server, the
// smoke lab's: the provider's own server-side apply with dryRun=All and
// strict field validation, so an unknown field, a wrong type or an object
// the API (or MetalLB's webhook) rejects fails here, though k3d itself cannot
// run on this machine. Namespaces are created for real (a dry-run object
// cannot live in a namespace that does not exist) and removed after.
func k3dManifestsOnLab(ctx context.Context, t *testing.T, kubeconfig string) {
	t.Run("every manifest of the k3d provider is valid for the v1.33 API", func(t *testing.T) {
		root, err := lab.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		r, _, err := topology.Load(filepath.Join(root, "kind-configs", "k3d-ha.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		ms, err := k3d.Manifests(ctx, r, k3d.NewToken())
		if err != nil {
			t.Fatal(err)
		}
		cfg, cs := labREST(t, kubeconfig)
		ap, err := rackclient.NewApplier(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ap.DryRun = true
		total := 0
		for _, m := range ms {
			objs, err := rackclient.Objects(m)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range objs {
				if o.GetKind() != "Namespace" {
					continue
				}
				_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.GetName()}}, metav1.CreateOptions{})
				if err == nil {
					name := o.GetName()
					t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{}) })
				} else if !apierrors.IsAlreadyExists(err) {
					t.Fatal(err)
				}
			}
			n, err := ap.Apply(ctx, m)
			total += n
			if err != nil {
				t.Errorf("rejected by the API server: %v", err)
			}
		}
		t.Logf("%d objects in %d manifests accepted by the v1.33 API server (dry run, strict fields)", total, len(ms))
		if total < 20 {
			t.Errorf("only %d objects: the manifests are not all there", total)
		}
	})
}

// k3dInstallOnLab runs the k3d provider's install steps for real against the
// smoke lab's cluster, where they do not need k3d: MetalLB and its pool (the
// lab's own pool: MetalLB is already there, so the apply changes nothing), the
// NFS CSI driver and the StorageClass, frpc, and the ingress IP given to the
// ingress Service. Images cannot be pulled here, so the driver's and frpc's
// pods do not start: what is shown is that every object is created as the
// provider means it. The probe workloads are the lab's own (probe.Deploy, run
// by every `up`). The lab is removed after this.
func k3dInstallOnLab(ctx context.Context, t *testing.T, r *topology.Rack, kubeconfig string) {
	t.Run("the k3d provider's install steps, for real, on the lab's cluster", func(t *testing.T) {
		c := *r
		c.Spec.Kubernetes.Distribution = topology.DistributionK3s
		st := *r.Spec.Storage
		st.StorageClasses = []topology.StorageClass{{Name: "rackdrill-k3d-nfs", Provisioner: "nfs.csi.k8s.io", ReclaimPolicy: "Delete"}}
		c.Spec.Storage = &st
		tun := *r.Spec.Tunnel
		tun.Type = topology.TunnelFRP
		tun.Client = topology.TunnelClient{Namespace: "rackdrill-k3d-frp", Deployment: "frpc"}
		c.Spec.Tunnel = &tun
		ms, err := k3d.Manifests(ctx, &c, "lab-token")
		if err != nil {
			t.Fatal(err)
		}
		cfg, cs := labREST(t, kubeconfig)
		ap, err := rackclient.NewApplier(cfg)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := k3d.ApplyAll(ctx, ap, ms, testr.New(t)); err != nil {
			t.Fatal(err)
		}
		if err := k3d.IngressIP(ctx, cs, &c); err != nil {
			t.Fatal(err)
		}
		t.Logf("install steps applied in %s", time.Since(start).Round(100*time.Millisecond))
		sc, err := cs.StorageV1().StorageClasses().Get(ctx, "rackdrill-k3d-nfs", metav1.GetOptions{})
		if err != nil || sc.Provisioner != "nfs.csi.k8s.io" || sc.Parameters["server"] != r.Node(st.NFS.Node).Address || sc.Parameters["share"] != st.NFS.Exports[0] {
			t.Errorf("StorageClass: %+v %v", sc, err)
		}
		if _, err := cs.StorageV1().CSIDrivers().Get(ctx, "nfs.csi.k8s.io", metav1.GetOptions{}); err != nil {
			t.Errorf("CSIDriver: %v", err)
		}
		for _, name := range []string{"csi-nfs-controller"} {
			if _, err := cs.AppsV1().Deployments("kube-system").Get(ctx, name, metav1.GetOptions{}); err != nil {
				t.Errorf("Deployment kube-system/%s: %v", name, err)
			}
		}
		if _, err := cs.AppsV1().DaemonSets("kube-system").Get(ctx, "csi-nfs-node", metav1.GetOptions{}); err != nil {
			t.Errorf("DaemonSet kube-system/csi-nfs-node: %v", err)
		}
		d, err := cs.AppsV1().Deployments("rackdrill-k3d-frp").Get(ctx, "frpc", metav1.GetOptions{})
		if err != nil || d.Spec.Template.Spec.Containers[0].Image != k3d.FRPCImage {
			t.Errorf("frpc Deployment: %v", err)
		}
		sec, err := cs.CoreV1().Secrets("rackdrill-k3d-frp").Get(ctx, "frpc", metav1.GetOptions{})
		if err != nil || !strings.Contains(string(sec.Data["frpc.toml"]), `auth.token = "lab-token"`) {
			t.Errorf("frpc's Secret: %v", err)
		}
		in := r.Spec.Ingress
		svc, err := cs.CoreV1().Services(in.Namespace).Get(ctx, in.Service, metav1.GetOptions{})
		if err != nil || svc.Annotations["metallb.io/loadBalancerIPs"] != in.IP {
			t.Errorf("ingress Service annotations: %v %v", svc.Annotations, err)
		}
		// MetalLB keeps serving the ingress IP: the apply of its manifests
		// and pool changed nothing that matters.
		lan := probe.NewHTTP("lan", "http://"+in.IP+"/", probe.WithHost(r.Spec.Probes.Host))
		deadline := time.Now().Add(time.Minute)
		for res := lan.Check(ctx); !res.OK; res = lan.Check(ctx) {
			if time.Now().After(deadline) {
				t.Errorf("the ingress stopped answering after the install steps: %v", res.Err)
				break
			}
			time.Sleep(time.Second)
		}
	})
}
