package lab_test

import (
	"context"
	"os"
	osexec "os/exec"
	"strings"
	"testing"
	"time"

	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/probe/agent"
	"rackdrill.dev/rackdrill/internal/dockertest"
)

// TestIntegrationK3sServer is issue 19's gate: K3s built from its source (with
// runc and the containerd shim) as a lab image, and one `k3s server
// --cluster-init` in a lab machine's container brought to a Ready node, with
// its embedded etcd and containerd. Not in `make test`: a cold build is about
// 10 minutes and K3s's 478 modules; `make test-k3s` runs it.
func TestIntegrationK3sServer(t *testing.T) {
	if os.Getenv("RACKDRILL_K3S") == "" {
		t.Skip("the K3s gate builds K3s from source (cold: about 10 minutes): make test-k3s runs it")
	}
	dockertest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	root, err := lab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := lab.NewBuilder(root, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if _, err := b.Build(ctx, "k3s"); err != nil {
		t.Fatal(err)
	}
	t.Logf("k3s image built or found in %s", time.Since(t0).Round(time.Second))
	image, _ := b.Tag("k3s")

	docker := func(args ...string) (string, error) {
		out, err := osexec.CommandContext(ctx, "docker", args...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	const name, rack = "k3s-gate-server-1", "k3s-gate"
	_, _ = docker("rm", "-f", name)
	_, _ = docker("volume", "rm", name+"-var")
	t.Cleanup(func() {
		_, _ = osexec.Command("docker", "rm", "-f", name).CombinedOutput()
		_, _ = osexec.Command("docker", "volume", "rm", name+"-var").CombinedOutput()
	})
	if out, err := docker("volume", "create", "--label", "rackdrill.dev/rack="+rack, name+"-var"); err != nil {
		t.Fatalf("docker volume create: %v\n%s", err, out)
	}
	// A lab machine as the containers provider makes one: systemd as PID 1,
	// every capability but CAP_SYS_RESOURCE, /var on a volume.
	if out, err := docker("run", "-d", "--name", name, "--hostname", "server-1", "--label", "rackdrill.dev/rack="+rack, "-t",
		"--tmpfs", "/tmp", "--tmpfs", "/run", "--tmpfs", "/run/lock", "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
		"--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined", "--security-opt", "systempaths=unconfined",
		"--device-cgroup-rule", "a *:* rwm", "--device", "/dev/kmsg", "--cgroupns", "private",
		"--mount", "type=volume,src="+name+"-var,dst=/var", image); err != nil {
		t.Fatalf("docker run %s: %v\n%s", image, err, out)
	}
	exec := func(cmd string) (string, error) { return docker("exec", name, "bash", "-c", cmd) }
	if out, err := exec("k3s --version"); err != nil || !strings.Contains(out, lab.K3sVersion) {
		t.Fatalf("k3s --version: %v\n%s", err, out)
	}
	// The machine runs systemd: K3s as a unit, as its installer makes it.
	// Debian's CNI plugins on its PATH; no Flannel (its CNI plugin is not on
	// the proxy) and no bundled add-on (their images cannot be pulled): the
	// pod network is the kubeadm lab's, written below. The host's cgroups are
	// v1, which the kubelet of v1.36 refuses unless told.
	start := time.Now()
	if out, err := exec("until systemctl is-system-running --quiet || [ $(systemctl is-system-running) = degraded ]; do sleep 1; done; " +
		"systemd-run --unit k3s --property=Delegate=yes --property=KillMode=process " +
		"--setenv=PATH=/usr/local/bin:/usr/lib/cni:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin " +
		"k3s server --cluster-init --node-name server-1 --disable traefik,servicelb,metrics-server,local-storage,coredns " +
		"--flannel-backend=none --pause-image registry.k8s.io/pause:" + lab.DefaultRelease.Pause + " " +
		"--write-kubeconfig-mode 644 --kube-proxy-arg=conntrack-max-per-core=0 --kubelet-arg=fail-cgroupv1=false"); err != nil {
		t.Fatalf("start k3s: %v\n%s", err, out)
	}
	journal := func() string {
		out, _ := exec("systemctl status k3s --no-pager; journalctl -u k3s --no-pager | grep -v ' I[0-9]' | tail -40")
		return out
	}
	kubectl := func(args string) (string, error) {
		return exec("kubectl --kubeconfig /etc/rancher/k3s/k3s.yaml " + args)
	}
	// until polls get until it says ok, for at most limit.
	until := func(what string, limit time.Duration, get func() (string, bool)) string {
		t.Helper()
		t0 := time.Now()
		for {
			out, ok := get()
			if ok {
				t.Logf("%s after %s: %s", what, time.Since(t0).Round(time.Second), out)
				return out
			}
			if ctx.Err() != nil || time.Since(t0) > limit {
				t.Fatalf("not %s after %s: %s\n%s", what, time.Since(t0).Round(time.Second), out, journal())
			}
			time.Sleep(3 * time.Second)
		}
	}
	// The node registers NotReady (no pod network yet) with its pod CIDR.
	cidr := until("registered with a pod CIDR", 5*time.Minute, func() (string, bool) {
		out, err := kubectl("get node server-1 -o jsonpath={.spec.podCIDR}")
		return out, err == nil && strings.Contains(out, "/")
	})
	conf := `{"cniVersion": "1.0.0", "name": "rackdrill", "plugins": [{"type": "ptp", "ipMasq": false,
 "ipam": {"type": "host-local", "ranges": [[{"subnet": "` + cidr + `"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
 {"type": "portmap", "capabilities": {"portMappings": true}}]}`
	if out, err := exec("cat > /etc/cni/net.d/10-rackdrill.conflist <<'EOF'\n" + conf + "\nEOF"); err != nil {
		t.Fatalf("write the pod network's config: %v\n%s", err, out)
	}
	last := until("Ready and an etcd voter", 3*time.Minute, func() (string, bool) {
		out, err := kubectl(`get node server-1 -o jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="EtcdIsVoter")].status} {.status.nodeInfo.kubeletVersion} {.status.nodeInfo.containerRuntimeVersion}'`)
		return out, err == nil && strings.HasPrefix(out, "True True ")
	})
	t.Logf("k3s server --cluster-init: node Ready %s after K3s started", time.Since(start).Round(time.Second))
	f := strings.Fields(last)
	if len(f) != 4 || f[1] != "True" || f[2] != strings.ReplaceAll(lab.K3sVersion, "+", "-") || !strings.HasPrefix(f[3], "containerd://2.3.4") {
		t.Errorf("server-1: Ready, etcd voter, kubelet, runtime = %q; want True True %s containerd://2.3.4 (K3s's embedded etcd and containerd, not Debian's)",
			last, strings.ReplaceAll(lab.K3sVersion, "+", "-"))
	}

	// A pod of the lab's own images (imported by K3s from the node image's
	// preloads, never pulled) runs on the pod network and answers.
	if out, err := kubectl("run demo --image rackdrill.dev/agent:latest --image-pull-policy Never --restart Never -- --demo"); err != nil {
		t.Fatalf("kubectl run: %v\n%s", err, out)
	}
	ip := until("demo pod running", 3*time.Minute, func() (string, bool) {
		out, err := kubectl("get pod demo -o jsonpath='{.status.phase} {.status.podIP}'")
		if err != nil {
			return out, false
		}
		phase, ip, _ := strings.Cut(out, " ")
		if phase == "Running" && ip != "" {
			return ip, true
		}
		desc, _ := kubectl("describe pod demo | tail -8")
		return out + "\n" + desc, false
	})
	if out, err := exec("exec 3<>/dev/tcp/" + ip + "/8080 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && timeout 5 cat <&3"); err != nil || !strings.Contains(out, agent.DemoMarker) {
		t.Errorf("the demo pod at %s:8080 from its node: %v\n%s", ip, err, out)
	}
	if out, err := kubectl("logs demo"); err != nil || !strings.Contains(out, "listening on :8080") {
		t.Errorf("kubectl logs demo (the API server reaching the kubelet): %v\n%s", err, out)
	}
	if mem, err := docker("stats", "--no-stream", "--format", "{{.MemUsage}}", name); err == nil {
		t.Logf("memory of the K3s server's machine: %s", mem)
	}
}
