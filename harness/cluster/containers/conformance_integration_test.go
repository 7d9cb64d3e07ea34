package containers_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/conform"
	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/preflight"
	"rackdrill.dev/rackdrill/harness/probe"
	"rackdrill.dev/rackdrill/harness/topology"
	"rackdrill.dev/rackdrill/suites/framework"
)

// conformanceOnLab runs every conformance check on the healthy smoke lab, then
// breaks the lab (or its topology) on purpose, once per check family the
// users rely on, and asserts that the check fails naming the field and the
// value it saw; then the pre-upgrade reports (etcd snapshot, drains).
func conformanceOnLab(ctx context.Context, t *testing.T, env *framework.Env) {
	target, err := env.Target(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// fails asserts that the check whose name starts with name fails with
	// every part of want in its message.
	fails := func(tg *conform.Target, name string, want ...string) {
		t.Helper()
		i := slices.IndexFunc(conform.Checks(), func(c conform.Check) bool { return strings.HasPrefix(c.Name, name) })
		if i < 0 {
			t.Fatalf("no check named %q...", name)
		}
		res := conform.Run(ctx, tg, conform.Checks()[i], framework.CheckLimit)
		if res.Passed || res.Skipped != "" {
			t.Errorf("check %q passed on a lab broken for it: %+v", res.Check, res)
			return
		}
		for _, w := range want {
			if !strings.Contains(res.Error, w) {
				t.Errorf("check %q: message %q does not say %q", res.Check, res.Error, w)
			}
		}
		t.Logf("broken as expected: %s", res.Error)
	}

	t.Run("healthy lab passes", func(t *testing.T) {
		for _, c := range conform.Checks() {
			res := conform.Run(ctx, target, c, framework.CheckLimit)
			switch {
			case res.Skipped != "":
				t.Logf("skip %s: %s", c.Name, res.Skipped)
			case !res.Passed:
				t.Errorf("%s [%s]: %s", c.Name, c.Field, res.Error)
			default:
				t.Logf("ok   %s: %s", c.Name, res.Observed)
			}
		}
	})
	cs := target.Kube

	t.Run("wrong ingress IP in the topology", func(t *testing.T) {
		r := *env.Rack
		in := *r.Spec.Ingress
		in.IP = strings.TrimSuffix(in.IP, ".240") + ".249"
		r.Spec.Ingress = &in
		tg := *target
		tg.Rack = &r
		fails(&tg, "the ingress Service", "spec.ingress.ip: documented "+in.IP, `holds "`+env.Rack.Spec.Ingress.IP+`"`)
	})

	t.Run("a missing taint", func(t *testing.T) {
		r := *env.Rack
		r.Spec.Nodes = slices.Clone(r.Spec.Nodes)
		i := slices.IndexFunc(r.Spec.Nodes, func(n topology.Node) bool { return n.Name == "worker-2" })
		r.Spec.Nodes[i].Taints = []topology.Taint{{Key: "storage", Value: "only", Effect: "NoSchedule"}}
		tg := *target
		tg.Rack = &r
		fails(&tg, "documented taints and labels", "spec.nodes[6] (worker-2).taints[0]: documented storage=only:NoSchedule, node worker-2 has taints []")
	})

	t.Run("a taint the pods do not tolerate", func(t *testing.T) {
		// A NoSchedule taint added under running pods: they stay, untolerated.
		taint := corev1.Taint{Key: "rackdrill.dev/test", Value: "x", Effect: corev1.TaintEffectNoSchedule}
		setTaints(ctx, t, env, "worker-1", func(ts []corev1.Taint) []corev1.Taint { return append(ts, taint) })
		defer setTaints(ctx, t, env, "worker-1", func(ts []corev1.Taint) []corev1.Taint {
			return slices.DeleteFunc(ts, func(x corev1.Taint) bool { return x.Key == taint.Key })
		})
		fails(target, "no pod runs on a tainted node", "runs on worker-1 without tolerating its taint rackdrill.dev/test=x:NoSchedule")
	})

	t.Run("an expired certificate", func(t *testing.T) {
		ns := env.Rack.Spec.Probes.Namespace
		host := "expired." + env.Rack.Spec.Probes.Host
		certPEM, keyPEM := selfSigned(t, host, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "conformance-expired", Namespace: ns}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM}}
		prefix := networkingv1.PathTypePrefix
		ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "conformance-expired", Namespace: ns},
			Spec: networkingv1.IngressSpec{TLS: []networkingv1.IngressTLS{{Hosts: []string{host}, SecretName: sec.Name}},
				Rules: []networkingv1.IngressRule{{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{
						Service: &networkingv1.IngressServiceBackend{Name: "demo", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}}}
		defer func() {
			_ = cs.NetworkingV1().Ingresses(ns).Delete(context.Background(), ing.Name, metav1.DeleteOptions{})
			_ = cs.CoreV1().Secrets(ns).Delete(context.Background(), sec.Name, metav1.DeleteOptions{})
		}()
		if _, err := cs.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.NetworkingV1().Ingresses(ns).Create(ctx, ing, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		fails(target, "every TLS secret of an Ingress", "Ingress "+ns+"/conformance-expired: the certificate in conformance-expired expired on")
	})

	t.Run("the UPS on battery", func(t *testing.T) {
		master := env.Rack.Metadata.Name + "-" + env.Rack.Spec.UPS.Node
		dev := "/etc/nut/" + env.Rack.Spec.UPS.Name + ".dev"
		upsStatus := func(st string) {
			dockerExec(t, ctx, master, "sed", "-i", "s/^ups.status: .*/ups.status: "+st+"/", dev)
			deadline := time.Now().Add(time.Minute)
			for time.Now().Before(deadline) {
				if strings.TrimSpace(dockerExec(t, ctx, master, "upsc", env.Rack.Spec.UPS.Name+"@localhost", "ups.status")) == st {
					return
				}
				time.Sleep(time.Second)
			}
			t.Fatalf("the UPS never reported %s", st)
		}
		// The same UPS read as a rack whose UPS NUT does not run would
		// declare it (spec.ups.commands), on the real machine: its status
		// command here wraps upsc, and its forced shutdown is upsmon's.
		r := *env.Rack
		u := *r.Spec.UPS
		u.Driver = ""
		u.Commands = &topology.UPSCommands{Status: "upsc " + u.Name + "@localhost", ForcedShutdown: "upsmon -c fsd"}
		r.Spec.UPS = &u
		byCommands := *target
		byCommands.Rack = &r
		i := slices.IndexFunc(conform.Checks(), func(c conform.Check) bool { return strings.HasPrefix(c.Name, "the UPS answers") })
		if res := conform.Run(ctx, &byCommands, conform.Checks()[i], framework.CheckLimit); !res.Passed {
			t.Errorf("the UPS online, read through spec.ups.commands: %+v", res)
		} else {
			t.Logf("ok through spec.ups.commands: %s", res.Observed)
		}
		upsStatus("OB")
		defer upsStatus("OL")
		fails(target, "the UPS answers", `spec.ups: UPS rackups on server-1 reports status "OB": not online (OL)`)
		fails(&byCommands, "the UPS answers", `spec.ups.commands.status: UPS rackups on server-1 reports status "OB": not online (OL)`)
	})

	// The pre-upgrade reports `rackdrill preflight` writes: an etcd snapshot
	// verified with etcdutl, and the drain report of every node.
	t.Run("preflight reports", func(t *testing.T) {
		etcdutl, err := env.Etcdutl(ctx)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(env.Artifacts, "preflight")
		s, err := preflight.EtcdSnapshot(ctx, target.Nodes, dir, etcdutl)
		if err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(s.Path); err != nil || fi.Size() != s.Size || s.Status.TotalKey < 100 {
			t.Errorf("snapshot %+v: %v", s, err)
		}
		t.Logf("etcd snapshot %s: %d bytes, revision %d, %d keys", s.Path, s.Size, s.Status.Revision, s.Status.TotalKey)
		report, err := preflight.DrainReport(ctx, cs)
		if err != nil {
			t.Fatal(err)
		}
		if len(report) != 5 {
			t.Errorf("drain report has %d nodes, want 5", len(report))
		}
		for _, d := range report {
			t.Logf("drain %s: drainable %t, evict %v, blocked %v", d.Node, d.Drainable, d.Evict, d.Blocked)
		}
		// The demo app's own PodDisruptionBudget, tightened to allow no
		// disruption (a pod may have only one budget), and a pod no
		// controller would recreate block the drain of their nodes, each
		// named; nothing is evicted (dry run).
		ns := env.Rack.Spec.Probes.Namespace
		bare := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "conformance-bare", Namespace: ns},
			Spec: corev1.PodSpec{NodeName: "worker-1", Containers: []corev1.Container{{Name: "agent", Image: lab.Alias("agent"),
				ImagePullPolicy: corev1.PullNever, Args: []string{"--listen", ":8099"}}}}}
		setMinAvailable := func(ctx context.Context, n int) error {
			patch := fmt.Sprintf(`{"spec":{"minAvailable":%d}}`, n)
			_, err := cs.PolicyV1().PodDisruptionBudgets(ns).Patch(ctx, probe.DemoName, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
			return err
		}
		defer func() {
			if err := setMinAvailable(context.Background(), 1); err != nil {
				t.Errorf("restore the demo's budget: %v", err)
			}
			_ = cs.CoreV1().Pods(ns).Delete(context.Background(), bare.Name, metav1.DeleteOptions{})
		}()
		if err := setMinAvailable(ctx, 2); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, bare, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		demo, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: probe.LabelComponent + "=" + probe.DemoName})
		if err != nil || len(demo.Items) == 0 {
			t.Fatalf("demo pods: %v", err)
		}
		// The budget's status is computed by the disruption controller.
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			got, err := cs.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, probe.DemoName, metav1.GetOptions{})
			if err == nil && got.Status.ObservedGeneration == got.Generation && got.Status.ExpectedPods == 2 && got.Status.DisruptionsAllowed == 0 {
				break
			}
			time.Sleep(time.Second)
		}
		blocked, err := preflight.DrainReport(ctx, cs)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range blocked {
			text := strings.Join(d.Blocked, "; ")
			switch {
			case d.Node == "worker-1":
				if d.Drainable || !strings.Contains(text, ns+"/conformance-bare") {
					t.Errorf("drain of worker-1 with a bare pod: drainable %t, blocked %q", d.Drainable, text)
				}
			case d.Node == demo.Items[0].Spec.NodeName:
				if d.Drainable || !strings.Contains(text, ns+"/"+demo.Items[0].Name+": a PodDisruptionBudget allows no eviction now") {
					t.Errorf("drain of %s under a budget of no disruption: drainable %t, blocked %q", d.Node, d.Drainable, text)
				}
			}
			t.Logf("drain %s: drainable %t, blocked %q", d.Node, d.Drainable, text)
		}
		if after, err := cs.CoreV1().Pods(ns).Get(ctx, demo.Items[0].Name, metav1.GetOptions{}); err != nil || after.DeletionTimestamp != nil {
			t.Errorf("the dry-run drain evicted %s: %v", demo.Items[0].Name, err)
		}

		uses, err := preflight.RemovedAPIs(ctx, cs, target.Dynamic, preflight.Minor{Major: 1, Minor: 34})
		if err != nil || len(uses) > 0 {
			t.Errorf("removed APIs in use on the lab: %v, %v", uses, err)
		}
	})

	// Last, as it takes a server away: a stopped server fails the control
	// plane's checks, naming it.
	t.Run("a server stopped", func(t *testing.T) {
		nodes, err := env.Nodes.Nodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		server3 := nodes[slices.IndexFunc(nodes, func(n cluster.Node) bool { return n.Name() == "server-3" })]
		if err := server3.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := server3.Start(context.Background()); err != nil {
				t.Error(err)
			}
		}()
		tg := *target
		tg.Nodes = nodes
		fails(&tg, "every server's API answers directly", "spec.nodes[4] (server-3).address: the API on https://", "does not answer")
		fails(&tg, "etcd has one started", "spec.nodes[4] (server-3): documented as a server, but no started etcd member answers there")
	})
}

func setTaints(ctx context.Context, t *testing.T, env *framework.Env, node string, edit func([]corev1.Taint) []corev1.Taint) {
	t.Helper()
	tg, err := env.Target(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n, err := tg.Kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Spec.Taints = edit(n.Spec.Taints)
	if _, err := tg.Kube.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func selfSigned(t *testing.T, host string, from, until time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: from, NotAfter: until, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}
