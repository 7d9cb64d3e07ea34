package containers_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/probe/install"
	"rackdrill.dev/rackdrill/harness/runrecord"
	"rackdrill.dev/rackdrill/harness/topology"
	"rackdrill.dev/rackdrill/internal/modinstall"
)

// smokeDeadMan is the dead-man delay of the smoke lab adopted over SSH: short,
// so that the SIGKILL case waits for it.
const smokeDeadMan = 20 * time.Second

// sshChaosOnLab drives the smoke lab as a real rack through the CLI, as users
// do: `rackdrill run --provider ssh` with its plan, its refusals, its dry run,
// a fault left by a SIGKILLed run (cp-lb-lost: two services on each of two
// machines) and reverted by each machine's dead-man timer,
// and a drill that passes through SSH.
func sshChaosOnLab(ctx context.Context, t *testing.T, r *topology.Rack, artifacts string) (bin, topo string) {
	root, err := lab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(t.TempDir(), "rackdrill")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/rackdrill")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build rackdrill: %v\n%s", err, out)
	}
	// lab-ssh.yaml on the smoke lab's subnets, with the key and known_hosts
	// its up wrote, and a short dead-man delay.
	data, err := os.ReadFile(filepath.Join(root, "kind-configs", "lab-ssh.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	base := strings.ReplaceAll(string(data), "172.29.10.", "172.29.110.")
	base = strings.ReplaceAll(base, "172.29.20.", "172.29.120.")
	base = strings.Replace(base, "name: lab\n", "name: "+r.Metadata.Name+"\n", 1)
	base = strings.ReplaceAll(base, "docker start lab-", "docker start "+r.Metadata.Name+"-")
	base = strings.ReplaceAll(base, "_artifacts/ssh/", filepath.Join(artifacts, "ssh")+"/")
	base = strings.Replace(base, "  ssh:\n", "  ssh:\n    deadMan: "+smokeDeadMan.String()+"\n", 1)
	write := func(name string, edit func(string) string) string {
		s := base
		if edit != nil {
			if s = edit(s); s == base {
				t.Fatalf("%s: the edit changed nothing (lab-ssh.yaml changed?)", name)
			}
		}
		if _, _, err := topology.Parse([]byte(s), name); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		p := filepath.Join(artifacts, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("lab-smoke-ssh.yaml", nil)
	installDir := t.TempDir()
	// The rack's fault ledger, in a state folder of the test's own.
	state := t.TempDir()
	// runner runs a rackdrill binary from a folder, with the test's state
	// folder and env added.
	runner := func(t *testing.T, bin, dir string, env ...string) func(args ...string) (string, string, int) {
		return func(args ...string) (string, string, int) {
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Dir = dir
			cmd.Env = append(append(os.Environ(), env...), fault.StateEnv+"="+state)
			var o, e bytes.Buffer
			cmd.Stdout, cmd.Stderr = &o, &e
			err := cmd.Run()
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatal(err)
			}
			return o.String(), e.String(), cmd.ProcessState.ExitCode()
		}
	}
	run := runner(t, bin, root)
	nas := r.Metadata.Name + "-nas-1"
	blocked := func() bool {
		return exec.CommandContext(ctx, "docker", "exec", nas, "iptables", "-S", topology.NFSChain).Run() == nil
	}
	deadMen := func() string {
		return strings.TrimSpace(dockerExec(t, ctx, nas, "systemctl", "list-units", "--all", "--no-legend", "--plain", "rackdrill-deadman-*"))
	}
	ledger := func(string) int {
		es, _ := os.ReadDir(filepath.Join(state, "racks", r.Metadata.Name, "ledger"))
		return len(es)
	}
	// Every session sshd opens, on every machine: the lab's sshd logs each
	// at VERBOSE, which this test turns on.
	var containers []string
	for _, n := range r.Spec.Nodes {
		containers = append(containers, r.Metadata.Name+"-"+n.Name)
		dockerExec(t, ctx, r.Metadata.Name+"-"+n.Name, "sh", "-c",
			"echo 'LogLevel VERBOSE' > /etc/ssh/sshd_config.d/zz-rackdrill-test.conf && systemctl reload ssh")
	}
	sessions := func() int {
		total := 0
		for _, c := range containers {
			out := dockerExec(t, ctx, c, "sh", "-c", "journalctl -u ssh -o cat --no-pager | grep -c 'Starting session:' || true")
			n, _ := strconv.Atoi(strings.TrimSpace(out))
			total += n
		}
		return total
	}

	t.Run("--dry-run prints every command and opens no session", func(t *testing.T) {
		before := sessions()
		stdout, stderr, code := run("run", "--provider", "ssh", "--topology", good, "--artifacts", t.TempDir(),
			"--scenario", "nfs-lost", "--scenario", "lb-master-lost", "--scenario", "server-kill-1", "--dry-run")
		if code != 0 || !strings.Contains(stdout, "dry run: nothing was run on any machine") ||
			!strings.Contains(stdout, "iptables -I INPUT -j RACKDRILL-NFS") || !strings.Contains(stdout, "lb-1         sh -c 'systemctl stop keepalived'") {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		time.Sleep(time.Second) // the journal is written asynchronously
		if after := sessions(); after != before {
			t.Errorf("the dry run opened %d sessions on the machines", after-before)
		}
	})

	t.Run("bad inventory: exit 2 naming the host, nothing injected", func(t *testing.T) {
		dir := t.TempDir()
		kh, _ := os.ReadFile(filepath.Join(artifacts, "ssh", "known_hosts"))
		var swapped []string
		lines := strings.Split(strings.TrimSpace(string(kh)), "\n")
		for i, l := range lines {
			if strings.Contains(l, "nas-1") || strings.HasPrefix(l, "172.29.110.41 ") {
				other := strings.Fields(lines[(i+1)%len(lines)])
				l = strings.Fields(l)[0] + " " + other[1] + " " + other[2]
			}
			swapped = append(swapped, l)
		}
		wrongKH := filepath.Join(dir, "known_hosts")
		_ = os.WriteFile(wrongKH, []byte(strings.Join(swapped, "\n")+"\n"), 0o600)
		badKey := filepath.Join(dir, "id_bad")
		_ = os.WriteFile(badKey, []byte("not a key\n"), 0o600)
		for _, tc := range []struct{ name, want string }{
			{"wrong-host-key", "host key of nas-1 (172.29.110.41:22) does not match"},
			{"unreachable", "node worker-1 (172.29.110.99:22) is unreachable over SSH"},
			{"no-sudo", "node nas-1: sudo as root without a password fails"},
			{"bad-key", "identity file " + badKey},
		} {
			t.Run(tc.name, func(t *testing.T) {
				p := write("lab-smoke-ssh-"+tc.name+".yaml", func(s string) string {
					switch tc.name {
					case "wrong-host-key":
						return strings.Replace(s, filepath.Join(artifacts, "ssh", "known_hosts"), wrongKH, 1)
					case "unreachable":
						return strings.Replace(s, "address: 172.29.110.31,", "address: 172.29.110.99,", 1)
					case "no-sudo":
						return strings.Replace(s, "  ssh:\n", "  ssh:\n    sudo: true\n", 1)
					default:
						return strings.Replace(s, filepath.Join(artifacts, "ssh", "id_ed25519"), badKey, 1)
					}
				})
				a := t.TempDir()
				stdout, stderr, code := run("run", "--topology", p, "--artifacts", a, "--scenario", "nfs-lost", "--yes")
				if code != 2 || !strings.Contains(stderr, tc.want) {
					t.Fatalf("exit %d, want 2 with %q:\n%s\n%s", code, tc.want, stderr, stdout)
				}
				if blocked() || ledger(a) != 0 || strings.Contains(stdout, "injecting") {
					t.Errorf("a fault went in: NFS blocked %v, ledger %d entries", blocked(), ledger(a))
				}
			})
		}
	})

	// cp-lb-lost stops two services on each load balancer: each machine's
	// timer must bring both back (the first version's restarted keepalived
	// only).
	lbs := []string{r.Metadata.Name + "-lb-1", r.Metadata.Name + "-lb-2"}
	lbServices := func() (stopped []string) {
		for _, lb := range lbs {
			for _, svc := range []string{"keepalived", "haproxy"} {
				if exec.CommandContext(ctx, "docker", "exec", lb, "systemctl", "is-active", "--quiet", svc).Run() != nil {
					stopped = append(stopped, lb+"/"+svc)
				}
			}
		}
		return stopped
	}
	lbDeadMen := func() (units string) {
		for _, lb := range lbs {
			units += strings.TrimSpace(dockerExec(t, ctx, lb, "systemctl", "list-units", "--all", "--no-legend", "--plain", "rackdrill-deadman-*"))
		}
		return units
	}
	t.Run("SIGKILL after the injection: each machine's dead-man timer reverts all its steps", func(t *testing.T) {
		a := filepath.Join(artifacts, "ssh-sigkill")
		before := sessions()
		cmd := exec.CommandContext(ctx, bin, "run", "--topology", good, "--artifacts", a, "--scenario", "cp-lb-lost", "--yes")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), fault.StateEnv+"="+state) // the ledger the checks below read
		pipe, _ := cmd.StdoutPipe()
		cmd.Stderr = testWriter{t}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		lines := bufio.NewScanner(pipe)
		inPlace := false
		for lines.Scan() {
			if strings.Contains(lines.Text(), "] fault in place") {
				inPlace = true
				break
			}
		}
		go func() { // keep the pipe drained
			for lines.Scan() {
			}
		}()
		if stopped := lbServices(); !inPlace || len(stopped) != 4 {
			t.Fatalf("the fault is not in place (run ended: %v, stopped: %v)", !inPlace, stopped)
		}
		// While the harness lives it re-arms the timers: after more than two
		// delays the fault is still in place.
		time.Sleep(2*smokeDeadMan + 5*time.Second)
		if stopped := lbServices(); len(stopped) != 4 {
			t.Fatalf("a dead-man timer reverted while the harness was alive: stopped now %v", stopped)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		_ = cmd.Wait()
		for len(lbServices()) > 0 && time.Since(killed) < smokeDeadMan+30*time.Second {
			time.Sleep(500 * time.Millisecond)
		}
		took := time.Since(killed)
		if stopped := lbServices(); len(stopped) > 0 {
			t.Fatalf("%v still stopped %s after the SIGKILL", stopped, took.Round(time.Second))
		}
		t.Logf("the dead-man timers brought keepalived and HAProxy back on both load balancers %s after the SIGKILL (delay %s)",
			took.Round(100*time.Millisecond), smokeDeadMan)
		if took > smokeDeadMan+5*time.Second {
			t.Errorf("reverted after %s, later than its delay %s", took, smokeDeadMan)
		}
		if sessions() <= before {
			t.Error("the run opened no session: the session count does not count")
		}
		if ledger(a) != 1 {
			t.Fatalf("the killed run's fault should still be in the ledger, it has %d entries", ledger(a))
		}
		// The later run: `rackdrill recover` reverts again (idempotent),
		// cancels the fired timers and passes the residue check.
		stdout, stderr, code := run("recover")
		if code != 0 || !strings.Contains(stdout, "residue check passed") {
			t.Fatalf("recover: exit %d\n%s\n%s", code, stdout, stderr)
		}
		if u := lbDeadMen(); u != "" {
			t.Errorf("dead-man units left on the load balancers:\n%s", u)
		}
	})

	// A fault made through the API has its dead-man timer too: on every
	// server, restoring the objects with the server's own kubectl. The
	// harness is SIGKILLed with MetalLB dropped, and nothing is run after it
	// until the rack is whole again.
	t.Run("SIGKILL during metallb-dropped: the servers' timers restore MetalLB through their kubectl, no recover", func(t *testing.T) {
		_, cs := labREST(t, filepath.Join(artifacts, "kubeconfig"))
		metallb := func() (replicas int32, selector map[string]string) {
			d, err := cs.AppsV1().Deployments("metallb-system").Get(ctx, "controller", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ds, err := cs.AppsV1().DaemonSets("metallb-system").Get(ctx, "speaker", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return *d.Spec.Replicas, ds.Spec.Template.Spec.NodeSelector
		}
		wantReplicas, wantSelector := metallb()
		a := filepath.Join(artifacts, "ssh-sigkill-api")
		cmd := exec.CommandContext(ctx, bin, "run", "--topology", good, "--artifacts", a, "--scenario", "metallb-dropped", "--yes")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), fault.StateEnv+"="+state)
		pipe, _ := cmd.StdoutPipe()
		cmd.Stderr = testWriter{t}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		lines := bufio.NewScanner(pipe)
		inPlace, armed := false, false
		for lines.Scan() {
			armed = armed || strings.Contains(lines.Text(), "dead-man timer (systemd-run --on-active=20s, re-armed while rackdrill runs) that restores Deployment metallb-system/controller's replicas and DaemonSet metallb-system/speaker's nodeSelector by itself, with kubectl --kubeconfig /etc/kubernetes/admin.conf on this server")
			if strings.Contains(lines.Text(), "] fault in place") {
				inPlace = true
				break
			}
		}
		go func() {
			for lines.Scan() {
			}
		}()
		if !armed {
			t.Error("the plan does not name the servers' dead-man timers")
		}
		if n, sel := metallb(); !inPlace || n != 0 || sel[fault.DropSelectorKey] == "" {
			t.Fatalf("the fault is not in place (run ended: %v, controller replicas %d, speaker nodeSelector %v)", !inPlace, n, sel)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		_ = cmd.Wait()
		restored := func() bool {
			n, sel := metallb()
			return n == wantReplicas && maps.Equal(sel, wantSelector)
		}
		for !restored() && time.Since(killed) < smokeDeadMan+30*time.Second {
			time.Sleep(500 * time.Millisecond)
		}
		took := time.Since(killed)
		if n, sel := metallb(); !restored() {
			t.Fatalf("%s after the SIGKILL: controller replicas %d (want %d), speaker nodeSelector %v (want %v)", took.Round(time.Second), n, wantReplicas, sel, wantSelector)
		}
		t.Logf("the servers' dead-man timers restored MetalLB %s after the SIGKILL (delay %s), with no rackdrill running", took.Round(100*time.Millisecond), smokeDeadMan)
		if took > smokeDeadMan+5*time.Second {
			t.Errorf("restored after %s, later than its delay %s", took, smokeDeadMan)
		}
		// The ledger still names the fault; recover finds it restored and
		// cancels the timers.
		if ledger(a) != 1 {
			t.Fatalf("the killed run's fault should still be in the ledger, it has %d entries", ledger(a))
		}
		stdout, stderr, code := run("recover")
		if code != 0 || !strings.Contains(stdout, "residue check passed") {
			t.Fatalf("recover: exit %d\n%s\n%s", code, stdout, stderr)
		}
	})

	// A rack rackdrill did not build has none of the probes' workloads: the
	// smoke lab made bare (`rackdrill probes remove`), then run over SSH as a
	// real rack is, by rackdrill as its owner installs it (`go install
	// …@version`) and runs it from an empty directory, with no clone: the
	// agent is built from the module at the binary's version, loaded with ctr
	// over SSH, before conformance and two drills.
	t.Run("bare rack: installed binary from an empty directory, probe workloads installed over SSH, conformance, two drills held", func(t *testing.T) {
		// Installed in the lab test's own folder: the binary outlives this
		// subtest (it removes the probes at the end).
		in, err := modinstall.Install(root, installDir)
		if err != nil {
			t.Fatal(err)
		}
		run := runner(t, in.Bin, t.TempDir(), in.Env...)
		kc := filepath.Join(artifacts, "kubeconfig")
		before := probeObjects(ctx, t, kc)
		if !slices.Contains(before, "DaemonSet/rackdrill-probes/rackdrill-agent") || !slices.ContainsFunc(before, func(s string) bool { return strings.HasPrefix(s, "Pod/") }) {
			t.Fatalf("before removal, the labelled objects lack the agents and their pods: %v", before)
		}
		stdout, stderr, code := run("probes", "remove", "--topology", good)
		if code != 0 || !strings.Contains(stdout, "nothing labelled rackdrill.dev/probe is left") {
			t.Fatalf("probes remove: exit %d\n%s\n%s", code, stdout, stderr)
		}
		if left := probeObjects(ctx, t, kc); len(left) > 0 {
			t.Fatalf("after probes remove, still labelled: %v", left)
		}
		a := filepath.Join(artifacts, "ssh-run")
		stdout, stderr, code = run("run", "--provider", "ssh", "--topology", good, "--artifacts", a,
			"--scenario", "nfs-lost", "--scenario", "tunnel-client-cut", "--yes")
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		want := []string{"Probe workloads: installed first if namespace rackdrill-probes lacks them",
			"image:   " + lab.AgentRepository + ":<hash>, built on this machine from rackdrill.dev/rackdrill@" + in.Version,
			"probes: installing them: namespace rackdrill-probes does not exist", "probes: ready in",
			"[storage] ok", "[metallb] ok", "[nfs-lost", "[tunnel-client-cut", "residue check"}
		for _, n := range []string{"server-1", "server-2", "server-3", "worker-1", "worker-2"} {
			want = append(want, "probes: "+n+": loaded "+lab.AgentRepository+":")
		}
		for _, w := range want {
			if !strings.Contains(stdout, w) {
				t.Errorf("output lacks %q:\n%s", w, stdout)
			}
		}
		rec, err := runrecord.Load(filepath.Join(a, "run.json"))
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.Drills) != 2 {
			t.Fatalf("%d drills recorded, want 2", len(rec.Drills))
		}
		for _, d := range rec.Drills {
			if d.Result.Verdict != matrix.Held || !d.Effect.Seen {
				t.Errorf("%s: verdict %s, effect seen %v", d.Result.Fault, d.Result.Verdict, d.Effect.Seen)
			}
		}
		img := strings.TrimSpace(kubectlImage(ctx, t, kc))
		if !strings.HasPrefix(img, lab.AgentRepository+":") {
			t.Errorf("the agents run %q, not the image loaded over SSH", img)
		}
		if blocked() || deadMen() != "" || ledger(a) != 0 {
			t.Errorf("left behind: NFS blocked %v, dead-man units %q, ledger %d", blocked(), deadMen(), ledger(a))
		}
		// The installed binary removes the probes at the end too.
		bin = in.Bin
	})
	return bin, good
}

// probeObjects lists every object of the smoke lab's API labelled as a probe
// workload.
func probeObjects(ctx context.Context, t *testing.T, kubeconfig string) []string {
	t.Helper()
	cfg, _ := labREST(t, kubeconfig)
	objs, err := install.Leftovers(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// kubectlImage is the image of the agents' DaemonSet.
func kubectlImage(ctx context.Context, t *testing.T, kubeconfig string) string {
	t.Helper()
	_, cs := labREST(t, kubeconfig)
	ds, err := cs.AppsV1().DaemonSets("rackdrill-probes").Get(ctx, "rackdrill-agent", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ds.Spec.Template.Spec.Containers[0].Image
}

// probesRemovedOnLab: `rackdrill probes remove` at the end leaves nothing of
// the probes: no labelled object in the API, no namespace, no loaded image.
func probesRemovedOnLab(ctx context.Context, t *testing.T, r *topology.Rack, artifacts, bin, topo string) {
	t.Run("probes remove leaves nothing behind", func(t *testing.T) {
		kc := filepath.Join(artifacts, "kubeconfig")
		if len(probeObjects(ctx, t, kc)) == 0 {
			t.Fatal("no probe workload to remove: the test would prove nothing")
		}
		// From an empty directory: the binary may be the installed one.
		cmd := exec.CommandContext(ctx, bin, "probes", "remove", "--topology", topo)
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("probes remove: %v\n%s", err, out)
		}
		if left := probeObjects(ctx, t, kc); len(left) > 0 {
			t.Errorf("still labelled rackdrill.dev/probe: %v", left)
		}
		ns := exec.CommandContext(ctx, "docker", "exec", r.Metadata.Name+"-server-1", "kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "get", "namespace", "rackdrill-probes")
		if o, err := ns.CombinedOutput(); err == nil || !strings.Contains(string(o), "NotFound") {
			t.Errorf("namespace rackdrill-probes: %s", o)
		}
		for _, n := range []string{"server-1", "server-2", "server-3", "worker-1", "worker-2"} {
			if imgs := dockerExec(t, ctx, r.Metadata.Name+"-"+n, "ctr", "-n", "k8s.io", "images", "ls", "-q"); strings.Contains(imgs, lab.AgentRepository) {
				t.Errorf("%s still has the agent image loaded over SSH", n)
			}
		}
	})
}
