package containers_test

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/go-logr/logr/testr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"rackdrill.dev/rackdrill/harness/cluster/containers"
	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/probe"
	"rackdrill.dev/rackdrill/harness/probe/agent"
	"rackdrill.dev/rackdrill/harness/rackclient"
	"rackdrill.dev/rackdrill/harness/topology"
	"rackdrill.dev/rackdrill/internal/dockertest"
	"rackdrill.dev/rackdrill/scenarios"
	"rackdrill.dev/rackdrill/suites/framework"
)

// smokeRack is kind-configs/lab.yaml under another name and on other subnets,
// so that the smoke test never meets a lab the user has up.
func smokeRack(t *testing.T) *topology.Rack {
	r, _ := smokeTopology(t)
	return r
}

// smokeTopology is the smoke rack and its YAML.
func smokeTopology(t *testing.T) (*topology.Rack, string) {
	root, err := lab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "kind-configs", "lab.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(data), "172.29.10.", "172.29.110.")
	s = strings.ReplaceAll(s, "172.29.20.", "172.29.120.")
	s = strings.Replace(s, "name: lab\n", "name: lab-smoke\n", 1)
	r, _, err := topology.Parse([]byte(s), "lab.yaml (smoke copy)")
	if err != nil {
		t.Fatal(err)
	}
	return r, s
}

// TestIntegrationLabUp is the lab smoke test: `up` of the whole default rack on
// the lab images, then what the lab promises, checked through the real paths.
func TestIntegrationLabUp(t *testing.T) {
	dockertest.Require(t)
	r, yaml := smokeTopology(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	root, _ := lab.RepoRoot()
	b, err := lab.NewBuilder(root, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Build(ctx, "node"); err != nil {
		t.Fatal(err)
	}
	artifacts := t.TempDir()
	p := containers.NewProvider(r.Metadata.Name, containers.WithArtifacts(artifacts), containers.WithProgress(testWriter{t}))
	// A rack left by an earlier, killed run of this test is removed first.
	if err := p.Down(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Down(context.Background()); err != nil {
			t.Errorf("down: %v", err)
		}
		out, _ := exec.Command("sh", "-c", "docker ps -aq --filter label=rackdrill.dev/rack=lab-smoke; docker network ls -q --filter label=rackdrill.dev/rack=lab-smoke; docker volume ls -q --filter label=rackdrill.dev/rack=lab-smoke").Output()
		if strings.TrimSpace(string(out)) != "" {
			t.Errorf("left after down:\n%s", out)
		}
	})
	if err := p.Up(ctx, r); err != nil {
		t.Fatal(err)
	}

	// Five Ready nodes through the VIP, with the kubeconfig written by up.
	kc, err := os.ReadFile(filepath.Join(artifacts, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(kc), "server: "+r.APIServerURL()) {
		t.Errorf("the kubeconfig does not point at the VIP %s", r.APIServerURL())
	}
	cfg, err := rackclient.ProbeConfig(kc, "")
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 5 {
		t.Fatalf("nodes through the VIP: %d, %v", len(nodes.Items), err)
	}
	// Three started etcd members.
	all, _ := p.Nodes(ctx)
	members := dockerExec(t, ctx, r.Metadata.Name+"-server-1", "etcdctl", "--endpoints=https://127.0.0.1:2379",
		"--cacert=/etc/kubernetes/pki/etcd/ca.crt", "--cert=/etc/kubernetes/pki/etcd/server.crt", "--key=/etc/kubernetes/pki/etcd/server.key",
		"member", "list")
	if strings.Count(members, ", started, ") != 3 {
		t.Errorf("etcd members:\n%s", members)
	}
	// The API certificate names the VIP.
	vip := r.Spec.ControlPlane.Endpoint.Host
	conn, err := tls.Dial("tcp", net.JoinHostPort(vip, "6443"), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	cert := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	found := false
	for _, ip := range cert.IPAddresses {
		found = found || ip.String() == vip
	}
	if !found {
		t.Errorf("API certificate SANs %v lack the VIP %s", cert.IPAddresses, vip)
	}
	// The demo app: from the LAN through the ingress IP, from the Internet
	// through the VPS; from the Internet neither the ingress IP nor the VIP.
	lan := probe.NewHTTP("lan", "http://"+r.Spec.Ingress.IP+"/", probe.WithHost(r.Spec.Probes.Host), probe.WithMarker(agent.DemoMarker))
	if res := lan.Check(ctx); !res.OK {
		t.Errorf("lan: %v", res.Err)
	}
	dial, err := p.InternetDialer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inet := probe.NewHTTP("internet", "http://"+r.Spec.Tunnel.Server.PublicAddress+"/", probe.WithHost(r.Spec.Probes.Host),
		probe.WithMarker(agent.DemoMarker), probe.WithDialer(dial))
	if res := inet.Check(ctx); !res.OK {
		t.Errorf("internet: %v", res.Err)
	}
	for _, addr := range []string{net.JoinHostPort(r.Spec.Ingress.IP, "80"), net.JoinHostPort(vip, "6443")} {
		dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
		if c, err := dial(dctx, "tcp", addr); err == nil {
			c.Close()
			t.Errorf("the Internet vantage point reaches %s on the LAN", addr)
		}
		dcancel()
	}
	// The UPS is online on its master, whose upsmon runs the rack's shutdown.
	if st := strings.TrimSpace(dockerExec(t, ctx, r.Metadata.Name+"-server-1", "upsc", "rackups@localhost", "ups.status")); st != "OL" {
		t.Errorf("UPS status %q, want OL", st)
	}
	if cmd := dockerExec(t, ctx, r.Metadata.Name+"-server-1", "grep", "^SHUTDOWNCMD", "/etc/nut/upsmon.conf"); !strings.Contains(cmd, "rackdrill-rack-shutdown") {
		t.Errorf("upsmon's shutdown command: %q", cmd)
	}
	// Every probe of the matrix green, as the drills build them.
	probes, unprobed, data, err := probe.ForRack(ctx, r, p, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if len(probes) != 7 || len(unprobed) != 0 || data == nil {
		t.Fatalf("%d probes, unprobed %v", len(probes), unprobed)
	}
	if err := data.Write(ctx); err != nil {
		t.Fatal(err)
	}
	for _, pr := range probes {
		timeout := r.Spec.Probes.Timeout.Duration
		if paced, ok := pr.(probe.Paced); ok {
			timeout = paced.Timeout()
		}
		cctx, ccancel := context.WithTimeout(ctx, timeout)
		res := pr.Check(cctx)
		ccancel()
		if !res.OK {
			t.Errorf("probe %s is not green: %v", pr.Name(), res.Err)
		} else {
			t.Logf("probe %s green in %s: %s", pr.Name(), res.Took.Round(time.Millisecond), res.Detail)
		}
	}
	// Storage on the NAS, through the agents.
	var eps []string
	for _, n := range all {
		for _, ro := range n.Roles() {
			if ro == topology.RoleWorker {
				eps = append(eps, net.JoinHostPort(n.Addr().String(), "30980"))
			}
		}
	}
	agents := probe.NewAgents(eps)
	for _, pr := range []probe.Probe{probe.NewApps(agents), probe.NewStorage(agents)} {
		if res := pr.Check(ctx); !res.OK {
			t.Errorf("%s: %v", pr.Name(), res.Err)
		}
	}
	if t.Failed() {
		return
	}

	// Two drills of the chaos suite, as `rackdrill run` drills them: a server
	// holding the etcd leader killed, and the tunnel client cut. Each must
	// hold its matrix row (or a declared deviation), pass the residue check
	// and leave the fault ledger empty.
	topo := filepath.Join(artifacts, "lab-smoke.yaml")
	if err := os.WriteFile(topo, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	env, err := framework.Load(testr.New(t), framework.Options{Topology: topo, Artifacts: artifacts})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"server-kill-1", "tunnel-client-cut"} {
		in, err := env.DrillInput(env.Matrix.Row(name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out, err := scenarios.Run(ctx, in)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, c := range out.Result.Cells {
			t.Logf("%s %-8s %-10s %s", name, c.Probe, c.Verdict, c.Why)
		}
		if out.Result.Verdict == matrix.Broken {
			t.Errorf("%s: the matrix row is broken", name)
			for p, rs := range out.Timelines {
				for _, r := range rs {
					if !r.OK && r.At.After(out.Result.Window.Inject) {
						t.Logf("%s: first failure of %s at +%s: %v", name, p, r.At.Sub(out.Result.Window.Inject).Round(time.Millisecond), r.Err)
						break
					}
				}
			}
		}
		for _, c := range out.Checks {
			if !c.OK {
				t.Errorf("%s: %s: %s", name, c.Name, c.Detail)
			}
		}
	}
	if live, err := env.Ledger.Entries(); err != nil || len(live) > 0 {
		t.Errorf("fault ledger after the drills: %v %v", live, err)
	}
	sshProviderOnLab(ctx, t, r, artifacts)
	bin, sshTopo := sshChaosOnLab(ctx, t, r, artifacts)
	k3dManifestsOnLab(ctx, t, filepath.Join(artifacts, "kubeconfig"))
	conformanceOnLab(ctx, t, env)
	k3dInstallOnLab(ctx, t, r, filepath.Join(artifacts, "kubeconfig"))
	probesRemovedOnLab(ctx, t, r, artifacts, bin, sshTopo)
}

func dockerExec(t *testing.T, ctx context.Context, name string, args ...string) string {
	t.Helper()
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, "docker", append([]string{"exec", name}, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker exec %s %v: %v\n%s%s", name, args, err, out, stderr.String())
	}
	return string(out)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
