package lab_test

import (
	"context"
	"fmt"
	"os"
	osexec "os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/probe/agent"
	"rackdrill.dev/rackdrill/internal/dockertest"
)

// k3sRack is what TestIntegrationK3sServer's machines are labelled with.
const k3sRack = "k3s-gate"

// k3sFlags are the flags every K3s server of the test runs with. Debian's CNI
// plugins on its PATH; no Flannel (its CNI plugin is not on the proxy) and no
// bundled add-on (their images cannot be pulled): the pod network is the
// kubeadm lab's, written by the test. The host's cgroups are v1, which the
// kubelet of v1.36 refuses unless told.
var k3sFlags = "--disable traefik,servicelb,metrics-server,local-storage,coredns " +
	"--flannel-backend=none --pause-image registry.k8s.io/pause:" + lab.DefaultRelease.Pause + " " +
	"--write-kubeconfig-mode 644 --kube-proxy-arg=conntrack-max-per-core=0 --kubelet-arg=fail-cgroupv1=false"

// k3sMachine is one lab machine of the K3s image.
type k3sMachine struct {
	t          *testing.T
	ctx        context.Context
	name, node string
}

func docker(ctx context.Context, args ...string) (string, error) {
	out, err := osexec.CommandContext(ctx, "docker", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// startK3sMachine runs a lab machine as the containers provider makes one:
// systemd as PID 1, every capability but CAP_SYS_RESOURCE, /var on a volume,
// on network.
func startK3sMachine(ctx context.Context, t *testing.T, image, network, node string) *k3sMachine {
	t.Helper()
	m := &k3sMachine{t: t, ctx: ctx, name: k3sRack + "-" + node, node: node}
	_, _ = docker(ctx, "rm", "-f", m.name)
	_, _ = docker(ctx, "volume", "rm", m.name+"-var")
	t.Cleanup(func() {
		_, _ = osexec.Command("docker", "rm", "-f", m.name).CombinedOutput()
		_, _ = osexec.Command("docker", "volume", "rm", m.name+"-var").CombinedOutput()
	})
	if out, err := docker(ctx, "volume", "create", "--label", "rackdrill.dev/rack="+k3sRack, m.name+"-var"); err != nil {
		t.Fatalf("docker volume create: %v\n%s", err, out)
	}
	if out, err := docker(ctx, "run", "-d", "--name", m.name, "--hostname", node, "--network", network, "--label", "rackdrill.dev/rack="+k3sRack, "-t",
		"--tmpfs", "/tmp", "--tmpfs", "/run", "--tmpfs", "/run/lock", "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
		"--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined", "--security-opt", "systempaths=unconfined",
		"--device-cgroup-rule", "a *:* rwm", "--device", "/dev/kmsg", "--cgroupns", "private",
		"--mount", "type=volume,src="+m.name+"-var,dst=/var", image); err != nil {
		t.Fatalf("docker run %s: %v\n%s", image, err, out)
	}
	return m
}

func (m *k3sMachine) exec(cmd string) (string, error) {
	return docker(m.ctx, "exec", m.name, "bash", "-c", cmd)
}

func (m *k3sMachine) kubectl(args string) (string, error) {
	return m.exec("kubectl --kubeconfig /etc/rancher/k3s/k3s.yaml " + args)
}

// startK3s runs `k3s server` with args as a systemd unit, as K3s's installer
// makes it.
func (m *k3sMachine) startK3s(args string) {
	m.t.Helper()
	// The image's own k3s unit (as K3s's installer writes it), its flags
	// given here by a drop-in rather than the config file rackdrill up writes.
	dropIn := "[Service]\nExecStart=\nExecStart=/usr/local/bin/k3s server --node-name " + m.node + " " + args + "\n"
	if out, err := m.exec("until systemctl is-system-running --quiet || [ $(systemctl is-system-running) = degraded ]; do sleep 1; done; " +
		"mkdir -p /etc/systemd/system/k3s.service.d && printf '" + dropIn + "' >/etc/systemd/system/k3s.service.d/gate.conf && " +
		"systemctl daemon-reload && systemctl start --no-block k3s"); err != nil {
		m.t.Fatalf("start k3s on %s: %v\n%s", m.node, err, out)
	}
}

func (m *k3sMachine) journal() string {
	out, _ := m.exec("systemctl status k3s --no-pager; journalctl -u k3s --no-pager | grep -v ' I[0-9]' | grep -v '\"level\":\"info\"' | tail -30")
	return m.node + ":\n" + out
}

// writePodNetwork gives the node the kubeadm lab's pod network: ptp and
// host-local on its pod CIDR.
func (m *k3sMachine) writePodNetwork(cidr string) {
	m.t.Helper()
	conf := `{"cniVersion": "1.0.0", "name": "rackdrill", "plugins": [{"type": "ptp", "ipMasq": false,
 "ipam": {"type": "host-local", "ranges": [[{"subnet": "` + cidr + `"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
 {"type": "portmap", "capabilities": {"portMappings": true}}]}`
	if out, err := m.exec("cat > /etc/cni/net.d/10-rackdrill.conflist <<'EOF'\n" + conf + "\nEOF"); err != nil {
		m.t.Fatalf("write %s's pod network: %v\n%s", m.node, err, out)
	}
}

// until polls get until it says ok, for at most limit; on timeout the test
// fails with the journals of machines.
func until(ctx context.Context, t *testing.T, what string, limit time.Duration, machines []*k3sMachine, get func() (string, bool)) string {
	t.Helper()
	t0 := time.Now()
	for {
		out, ok := get()
		if ok {
			t.Logf("%s after %s: %s", what, time.Since(t0).Round(time.Second), out)
			return out
		}
		if ctx.Err() != nil || time.Since(t0) > limit {
			var journals []string
			for _, m := range machines {
				journals = append(journals, m.journal())
			}
			t.Fatalf("not %s after %s: %s\n%s", what, time.Since(t0).Round(time.Second), out, strings.Join(journals, "\n"))
		}
		time.Sleep(3 * time.Second)
	}
}

// TestIntegrationK3sServer is issue 19's gate: K3s built from its source (with
// runc and the containerd shim) as a lab image, and one `k3s server
// --cluster-init` in a lab machine's container brought to a Ready node, with
// its embedded etcd and containerd, running a pod. Then two more servers join
// it through its API, as a K3s rack's servers do: three etcd voters, and the
// API of the others answers while the first is killed. Not in `make test`: a
// cold build is about 10 minutes and K3s's 478 modules; `make test-k3s` runs it.
func TestIntegrationK3sServer(t *testing.T) {
	if os.Getenv("RACKDRILL_K3S") == "" {
		t.Skip("the K3s gate builds K3s from source (cold: about 10 minutes): make test-k3s runs it")
	}
	dockertest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	b := newTestBuilder(t)
	t0 := time.Now()
	if _, err := b.Build(ctx, "k3s"); err != nil {
		t.Fatal(err)
	}
	t.Logf("k3s image built or found in %s", time.Since(t0).Round(time.Second))
	image, _ := b.Tag("k3s")

	network := k3sRack
	_, _ = docker(ctx, "network", "rm", network)
	if out, err := docker(ctx, "network", "create", "--label", "rackdrill.dev/rack="+k3sRack, network); err != nil {
		t.Fatalf("docker network create: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = osexec.Command("docker", "network", "rm", network).CombinedOutput() })

	s1 := startK3sMachine(ctx, t, image, network, "server-1")
	if out, err := s1.exec("k3s --version"); err != nil || !strings.Contains(out, lab.K3sVersion) {
		t.Fatalf("k3s --version: %v\n%s", err, out)
	}
	start := time.Now()
	s1.startK3s("--cluster-init " + k3sFlags)
	// The node registers NotReady (no pod network yet) with its pod CIDR.
	cidr := until(ctx, t, "server-1 registered with a pod CIDR", 5*time.Minute, []*k3sMachine{s1}, func() (string, bool) {
		out, err := s1.kubectl("get node server-1 -o jsonpath={.spec.podCIDR}")
		return out, err == nil && strings.Contains(out, "/")
	})
	s1.writePodNetwork(cidr)
	ready := func(m *k3sMachine, node string) func() (string, bool) {
		return func() (string, bool) {
			out, err := m.kubectl(`get node ` + node + ` -o jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="EtcdIsVoter")].status} {.status.nodeInfo.kubeletVersion} {.status.nodeInfo.containerRuntimeVersion}'`)
			return out, err == nil && strings.HasPrefix(out, "True True ")
		}
	}
	last := until(ctx, t, "server-1 Ready and an etcd voter", 3*time.Minute, []*k3sMachine{s1}, ready(s1, "server-1"))
	t.Logf("k3s server --cluster-init: node Ready %s after K3s started", time.Since(start).Round(time.Second))
	f := strings.Fields(last)
	if len(f) != 4 || f[2] != strings.ReplaceAll(lab.K3sVersion, "+", "-") || !strings.HasPrefix(f[3], "containerd://2.3.4") {
		t.Errorf("server-1: Ready, etcd voter, kubelet, runtime = %q; want True True %s containerd://2.3.4 (K3s's embedded etcd and containerd, not Debian's)",
			last, strings.ReplaceAll(lab.K3sVersion, "+", "-"))
	}

	// A pod of the lab's own images (imported by K3s from the node image's
	// preloads, never pulled) runs on the pod network and answers.
	if out, err := s1.kubectl("run demo --image rackdrill.dev/agent:latest --image-pull-policy Never --restart Never -- --demo"); err != nil {
		t.Fatalf("kubectl run: %v\n%s", err, out)
	}
	ip := until(ctx, t, "demo pod running", 3*time.Minute, []*k3sMachine{s1}, func() (string, bool) {
		out, err := s1.kubectl("get pod demo -o jsonpath='{.status.phase} {.status.podIP}'")
		if err != nil {
			return out, false
		}
		phase, ip, _ := strings.Cut(out, " ")
		if phase == "Running" && ip != "" {
			return ip, true
		}
		desc, _ := s1.kubectl("describe pod demo | tail -8")
		return out + "\n" + desc, false
	})
	if out, err := s1.exec("exec 3<>/dev/tcp/" + ip + "/8080 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && timeout 5 cat <&3"); err != nil || !strings.Contains(out, agent.DemoMarker) {
		t.Errorf("the demo pod at %s:8080 from its node: %v\n%s", ip, err, out)
	}
	if out, err := s1.kubectl("logs demo"); err != nil || !strings.Contains(out, "listening on :8080") {
		t.Errorf("kubectl logs demo (the API server reaching the kubelet): %v\n%s", err, out)
	}
	if mem, err := docker(ctx, "stats", "--no-stream", "--format", "{{.MemUsage}}", s1.name); err == nil {
		t.Logf("memory of the K3s server's machine: %s", mem)
	}
	if t.Failed() {
		return
	}

	// Two more servers join through server-1's API with its token: K3s's
	// embedded etcd grows to three voters.
	token, err := s1.exec("cat /var/lib/rancher/k3s/server/token")
	if err != nil {
		t.Fatalf("server-1's token: %v\n%s", err, token)
	}
	addr, err := docker(ctx, "inspect", "-f", "{{(index .NetworkSettings.Networks \""+network+"\").IPAddress}}", s1.name)
	if err != nil {
		t.Fatalf("server-1's address: %v\n%s", err, addr)
	}
	machines := []*k3sMachine{s1}
	start = time.Now()
	for _, node := range []string{"server-2", "server-3"} {
		m := startK3sMachine(ctx, t, image, network, node)
		machines = append(machines, m)
		m.startK3s(fmt.Sprintf("--server https://%s:6443 --token %s %s", addr, token, k3sFlags))
		cidr := until(ctx, t, node+" registered with a pod CIDR", 5*time.Minute, machines, func() (string, bool) {
			out, err := s1.kubectl("get node " + node + " -o jsonpath={.spec.podCIDR}")
			return out, err == nil && strings.Contains(out, "/")
		})
		m.writePodNetwork(cidr)
		until(ctx, t, node+" Ready and an etcd voter", 5*time.Minute, machines, ready(s1, node))
	}
	t.Logf("two servers joined in %s", time.Since(start).Round(time.Second))
	// K3s ships no etcdctl (nor does the k3s image): the test copies the
	// lab's own to the servers, as rackdrill does on a K3s rack.
	local, err := b.EtcdctlFor(ctx, runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range machines {
		if out, err := docker(ctx, "cp", local, m.name+":/usr/local/bin/etcdctl"); err != nil {
			t.Fatalf("docker cp etcdctl to %s: %v\n%s", m.name, err, out)
		}
	}
	etcdctl := "etcdctl --endpoints https://127.0.0.1:2379 --cacert /var/lib/rancher/k3s/server/tls/etcd/server-ca.crt " +
		"--cert /var/lib/rancher/k3s/server/tls/etcd/client.crt --key /var/lib/rancher/k3s/server/tls/etcd/client.key "
	out, err := machines[1].exec(etcdctl + "member list -w simple")
	if n := strings.Count(out, ", started, "); err != nil || n != 3 || strings.Contains(out, "true") {
		t.Errorf("etcd members seen from server-2 (want 3 started voters): %v\n%s", err, out)
	} else {
		t.Logf("etcd members:\n%s", out)
	}
	var mems []string
	for _, m := range machines {
		if mem, err := docker(ctx, "stats", "--no-stream", "--format", "{{.MemUsage}}", m.name); err == nil {
			mems = append(mems, m.node+" "+strings.Fields(mem)[0])
		}
	}
	t.Logf("memory of the three K3s servers: %s", strings.Join(mems, ", "))

	// server-1 killed as a power cut: the other two keep etcd's quorum, and
	// their API servers answer and write.
	if out, err := docker(ctx, "kill", s1.name); err != nil {
		t.Fatalf("docker kill %s: %v\n%s", s1.name, err, out)
	}
	killed := time.Now()
	until(ctx, t, "server-2's API writing with server-1 dead", 2*time.Minute, machines[1:], func() (string, bool) {
		out, err := machines[1].kubectl("create configmap after-kill-" + fmt.Sprint(time.Now().Unix()) + " -o name")
		return out, err == nil
	})
	out, err = machines[2].exec(etcdctl + "endpoint health --cluster")
	if strings.Count(out, "is healthy") != 2 {
		t.Errorf("etcd after server-1's kill, seen from server-3 (want the two others healthy): %v\n%s", err, out)
	}
	t.Logf("after server-1's kill (%s): %s", time.Since(killed).Round(time.Second), strings.ReplaceAll(out, "\n", "; "))
}
