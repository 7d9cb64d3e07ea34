package upgrade

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/preflight"
	"rackdrill.dev/rackdrill/harness/topology"
)

// The machines here are recordings: what the rehearsal runs on each, in order.
// A kubelet restart after the kit's kubelet was installed makes the node
// report the new version, as a real kubelet does once it registers again.
// (The rehearsal on real lab machines is `make rehearse`.)
type world struct {
	mu     sync.Mutex
	log    []string // "node: command"
	fed    []string // "node: what its command read on its standard input"
	kube   *fake.Clientset
	to     string
	failOn string // a command that fails, "node: command" prefix
	stuck  string // a node whose kubelet never comes back at the new version
	// onCmd, if set, runs before each command, with its "node: command" line.
	onCmd func(line string)
	// notReady counts, per server, the /readyz requests its API server
	// still fails (a restarted API server whose caches are not synced).
	notReady map[string]int
}

type recCmd struct {
	exec.Settings
	w    *world
	node string
}

func (c *recCmd) Run() error {
	line := c.node + ": " + strings.Join(c.Argv, " ")
	c.w.mu.Lock()
	c.w.log = append(c.w.log, line)
	fail := c.w.failOn != "" && strings.HasPrefix(line, c.w.failOn)
	onCmd := c.w.onCmd
	c.w.mu.Unlock()
	if onCmd != nil {
		onCmd(line)
	}
	if c.Stdin != nil {
		in, _ := io.ReadAll(c.Stdin)
		c.w.mu.Lock()
		c.w.fed = append(c.w.fed, c.node+": "+string(in))
		c.w.mu.Unlock()
	}
	if fail {
		if c.Stderr != nil {
			_, _ = c.Stderr.Write([]byte("[ERROR] something kubeadm refused\n"))
		}
		return errors.New("exit status 1")
	}
	switch {
	case slices.Contains(c.Argv, "/readyz"):
		c.w.mu.Lock()
		defer c.w.mu.Unlock()
		if c.w.notReady[c.node] > 0 {
			c.w.notReady[c.node]--
			_, _ = c.Stdout.Write([]byte("[-]informer-sync failed: reason withheld\nreadyz check failed\n"))
			return errors.New("exit status 1")
		}
		_, _ = c.Stdout.Write([]byte("ok"))
	case len(c.Argv) == 4 && c.Argv[0] == "docker" && c.Argv[1] == "cp" && c.Argv[3] == "-":
		// What the copy streams: the container's path, for the receiving
		// machine's command to record.
		_, _ = c.Stdout.Write([]byte(c.Argv[2]))
	case slices.Equal(c.Argv, []string{"kubeadm", "version", "-o", "short"}):
		_, _ = c.Stdout.Write([]byte(c.w.to + "\n"))
	case slices.Equal(c.Argv, []string{"systemctl", "restart", "kubelet"}) && c.node != c.w.stuck:
		ctx := context.Background()
		n, err := c.w.kube.CoreV1().Nodes().Get(ctx, c.node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		n.Status.NodeInfo.KubeletVersion = c.w.to
		_, err = c.w.kube.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	}
	return nil
}

type recNode struct {
	w    *world
	name string
}

func (n recNode) Command(_ context.Context, name string, args ...string) exec.Cmd {
	c := &recCmd{w: n.w, node: n.name}
	c.Init(c, append([]string{name}, args...))
	return c
}
func (n recNode) Name() string                        { return n.name }
func (recNode) Roles() []topology.Role                { return nil }
func (recNode) Addr() netip.Addr                      { return netip.Addr{} }
func (recNode) Stop(context.Context) error            { return nil }
func (recNode) Start(context.Context) error           { return nil }
func (recNode) Kill(context.Context) error            { return nil }
func (recNode) Running(context.Context) (bool, error) { return true, nil }
func (n recNode) String() string                      { return n.name }
func (w *world) Command(_ context.Context, name string, args ...string) exec.Cmd {
	return recNode{w: w, name: "harness"}.Command(context.Background(), name, args...)
}

func runbookTo(t *testing.T, to string) preflight.Runbook {
	t.Helper()
	r, _, err := topology.Load("../../kind-configs/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rb, err := preflight.NewRunbook(r, to)
	if err != nil {
		t.Fatal(err)
	}
	return rb
}

func newLab(t *testing.T, to string) (*Lab, *world, preflight.Runbook) {
	t.Helper()
	r, _, err := topology.Load("../../kind-configs/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rb, err := preflight.NewRunbook(r, to)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{kube: fake.NewClientset(), to: to}
	var nodes []cluster.Node
	for _, n := range r.Spec.Nodes {
		nodes = append(nodes, recNode{w: w, name: n.Name})
		if n.HasRole(topology.RoleServer) || n.HasRole(topology.RoleWorker) {
			_, err := w.kube.CoreV1().Nodes().Create(context.Background(), &corev1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: n.Name},
				Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{KubeletVersion: r.Spec.Kubernetes.Version},
					Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	l := &Lab{Rack: r, Nodes: nodes, Kube: w.kube, Kit: "rackdrill.dev/lab/" + to + "/kit:0123", Logs: t.TempDir(),
		Out: io.Discard, DrainTimeout: 10 * time.Second, ReadyTimeout: 3 * time.Second, Local: w, APISteady: 20 * time.Millisecond}
	return l, w, rb
}

// The lab's upgrade from v1.33.13 to v1.34.4 is kubeadm's, machine by
// machine: the kit copied and its images imported once per machine, kubeadm
// installed, upgrade plan and apply on the first server only, upgrade node on
// every other, the kubelet replaced and restarted, every node back at the
// new version before the next one's first command.
func TestPerformIsTheRunbook(t *testing.T) {
	l, w, rb := newLab(t, "v1.34.4")
	marks, err := l.Perform(context.Background(), rb, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(rb.Steps) - 3; len(marks) != want {
		t.Errorf("%d steps performed, want %d (every step but preflight, snapshot and after)", len(marks), want)
	}
	var applied, nodeUpgrades []string
	last := map[string]int{}
	for i, l := range w.log {
		node, cmd, _ := strings.Cut(l, ": ")
		switch {
		case cmd == "kubeadm upgrade apply -y v1.34.4":
			applied = append(applied, node)
		case cmd == "kubeadm upgrade node":
			nodeUpgrades = append(nodeUpgrades, node)
		}
		if !strings.HasPrefix(cmd, "mkdir") && !strings.HasPrefix(cmd, "tar") && !strings.HasPrefix(cmd, "bash -c") {
			last[node] = i
		}
	}
	if !slices.Equal(applied, []string{"server-1"}) {
		t.Errorf("upgrade apply ran on %v, want server-1 only", applied)
	}
	if len(nodeUpgrades) != len(kubeNodes(l.Rack))-1 || slices.Contains(nodeUpgrades, "server-1") {
		t.Errorf("upgrade node ran on %v", nodeUpgrades)
	}
	// The release's images reach every machine at the first step (a real
	// rack's registry serves them to all at once), before any kubeadm runs.
	firstKubeadm := slices.IndexFunc(w.log, func(s string) bool { return strings.Contains(s, "kit/bin/kubeadm") })
	kits := map[string]bool{}
	for i, line := range w.log {
		if node, cmd, _ := strings.Cut(line, ": "); strings.Contains(cmd, "ctr -n k8s.io images import") {
			kits[node] = true
			if i > firstKubeadm {
				t.Errorf("images imported after the first kubeadm install: %s", line)
			}
		}
	}
	if len(kits) != len(kubeNodes(l.Rack)) {
		t.Errorf("the release's images were imported on %v, want every one of %v", kits, kubeNodes(l.Rack))
	}
	// Per machine: kubeadm, its upgrade, kubelet, in that order, and each
	// machine done before the next begins.
	isKit := func(cmd string) bool {
		return strings.HasPrefix(cmd, "mkdir -p /opt/rackdrill") || strings.HasPrefix(cmd, "tar -x") || strings.HasPrefix(cmd, "bash -c")
	}
	prevEnd := -1
	for _, n := range kubeNodes(l.Rack) {
		var mine []string
		first, readyz := -1, 0
		for i, line := range w.log {
			if strings.HasPrefix(line, n+": ") && strings.HasSuffix(line, "get --raw /readyz") {
				readyz++ // TestNextServerWaitsForTheRestartedAPIServer
				continue
			}
			if strings.HasPrefix(line, n+": ") && !isKit(strings.TrimPrefix(line, n+": ")) {
				mine = append(mine, strings.TrimPrefix(line, n+": "))
				if first < 0 {
					first = i
				}
			}
		}
		if server := strings.HasPrefix(n, "server-"); server != (readyz > 0) {
			t.Errorf("%s's API server asked /readyz %d times", n, readyz)
		}
		if first <= prevEnd {
			t.Errorf("%s's first command (%d) ran before the previous machine was done (%d)", n, first, prevEnd)
		}
		prevEnd = last[n]
		want := []string{"install -m 0755 /opt/rackdrill/kit/bin/kubeadm /usr/bin/kubeadm",
			"kubeadm version -o short", "kubeadm upgrade", "install -m 0755 /opt/rackdrill/kit/bin/kubelet /usr/bin/kubelet",
			"install -m 0755 /opt/rackdrill/kit/bin/kubectl /usr/bin/kubectl", "systemctl daemon-reload", "systemctl restart kubelet", "systemctl is-active kubelet"}
		if n == "server-1" {
			want = slices.Insert(want, 2, "kubeadm upgrade plan v1.34.4")
		}
		if len(mine) != len(want) {
			t.Errorf("%s ran %q", n, mine)
			continue
		}
		for i := range want {
			if !strings.HasPrefix(mine[i], want[i]) {
				t.Errorf("%s: command %d is %q, want %q...", n, i+1, mine[i], want[i])
			}
		}
		node, _ := w.kube.CoreV1().Nodes().Get(context.Background(), n, metav1.GetOptions{})
		if node.Spec.Unschedulable || node.Status.NodeInfo.KubeletVersion != "v1.34.4" {
			t.Errorf("%s left cordoned %v at %s", n, node.Spec.Unschedulable, node.Status.NodeInfo.KubeletVersion)
		}
	}
	if !slices.ContainsFunc(w.log, func(s string) bool { return strings.HasPrefix(s, "harness: docker rm -f lab-upgrade-kit") }) {
		t.Error("the kit's container was not removed")
	}
}

func kubeNodes(r *topology.Rack) []string {
	var out []string
	for _, n := range r.Spec.Nodes {
		if n.HasRole(topology.RoleServer) || n.HasRole(topology.RoleWorker) {
			out = append(out, n.Name)
		}
	}
	return out
}

// A step that fails stops the upgrade there: the error names the step, its
// machine and what the tool said, and nothing after it runs (the release's
// images, imported everywhere at the first step, aside).
func TestPerformStopsAtTheFailingStep(t *testing.T) {
	l, w, rb := newLab(t, "v1.34.4")
	w.failOn = "server-2: kubeadm upgrade node"
	marks, err := l.Perform(context.Background(), rb, nil)
	var se *StepError
	if !errors.As(err, &se) {
		t.Fatalf("err %v, want a StepError", err)
	}
	if se.Mark.Node != "server-2" || se.Mark.Kind != preflight.StepUpgradeNode || !strings.Contains(err.Error(), "something kubeadm refused") {
		t.Errorf("error %q", err)
	}
	if marks[len(marks)-1].Error == "" || marks[len(marks)-1].End.Before(marks[len(marks)-1].Start) {
		t.Errorf("last mark %+v", marks[len(marks)-1])
	}
	touched := func(s string) bool {
		cmd, ok := strings.CutPrefix(s, "server-3: ")
		return ok && !strings.HasPrefix(cmd, "mkdir -p /opt/rackdrill") && !strings.HasPrefix(cmd, "tar -x") && !strings.HasPrefix(cmd, "bash -c")
	}
	if i := slices.IndexFunc(w.log, touched); i >= 0 {
		t.Errorf("server-3 was touched after server-2 failed: %s", w.log[i])
	}
}

// A kubelet that does not come back at the new version fails the uncordon
// step, with what was seen.
func TestPerformWaitsForTheNewKubelet(t *testing.T) {
	l, w, rb := newLab(t, "v1.34.4")
	w.stuck = "server-1"
	_, err := l.Perform(context.Background(), rb, nil)
	var se *StepError
	if !errors.As(err, &se) || se.Mark.Kind != preflight.StepUncordon || !strings.Contains(err.Error(), "kubelet v1.33.13") {
		t.Fatalf("err %v, want the uncordon of server-1 to fail with the kubelet seen at v1.33.13", err)
	}
}

// A real rack is never upgraded, whatever asks.
func TestPerformRefusesARealRack(t *testing.T) {
	l, w, rb := newLab(t, "v1.34.4")
	l.Rack.Spec.Provider = topology.ProviderSSH
	var out bytes.Buffer
	l.Out = &out
	_, err := l.Perform(context.Background(), rb, nil)
	if err == nil || !strings.Contains(err.Error(), "never upgrades a real rack") || len(w.log) != 0 {
		t.Fatalf("err %v, commands %v", err, w.log)
	}
}

// The kit is copied out of the folders the kit image's recipe fills: its
// binaries land in KitDir/bin on each machine (docker cp's archive holds the
// folder itself, so it is extracted into KitDir), its images are streamed
// from the recipe's images folder. (The first rehearsal on the lab copied a
// folder the image does not have.)
func TestKitCopiedFromWhereTheRecipePutsIt(t *testing.T) {
	m := regexp.MustCompile(`COPY bin (\S+)/bin\n`).FindStringSubmatch(lab.KitDockerfile())
	if m == nil {
		t.Fatalf("the kit's Dockerfile copies no bin folder:\n%s", lab.KitDockerfile())
	}
	inImage := m[1]
	if !strings.Contains(lab.KitDockerfile(), "COPY images "+inImage+"/images\n") {
		t.Fatalf("the kit's Dockerfile copies no images folder into %s:\n%s", inImage, lab.KitDockerfile())
	}
	l, w, rb := newLab(t, "v1.34.4")
	if _, err := l.Perform(context.Background(), rb, nil); err != nil {
		t.Fatal(err)
	}
	var into string
	for _, line := range w.log {
		if f := strings.Fields(line); len(f) == 5 && f[0] == "server-1:" && f[1] == "tar" && f[2] == "-x" {
			into = f[4]
			break
		}
	}
	fed := fedTo(w, "server-1")
	if len(fed) == 0 {
		t.Fatal("nothing was copied onto server-1")
	}
	if want := inImage + "/bin"; fed[0] != want {
		t.Errorf("the binaries are copied from %q of the kit image, whose recipe fills %q", fed[0], want)
	}
	if got := path.Join(into, path.Base(fed[0])); got != KitDir+"/bin" {
		t.Errorf("extracted into %q, the binaries land in %q, not %q", into, got, KitDir+"/bin")
	}
	for _, src := range fed[1:] {
		if path.Dir(src) != inImage+"/images" {
			t.Errorf("an image is copied from %q, outside the recipe's %s/images", src, inImage)
		}
	}
}

// fedTo lists what the kit's container streamed to node's commands, in order,
// by the path in the kit image.
func fedTo(w *world, node string) []string {
	var out []string
	for _, f := range w.fed {
		if src, ok := strings.CutPrefix(f, node+": "); ok {
			_, p, _ := strings.Cut(src, ":")
			out = append(out, p)
		}
	}
	return out
}

// A server runs every image of the release, a worker only kube-proxy, CoreDNS
// and the pause image: each receives only those (the lab's two workers were
// each sent the whole release, half a gigabyte they never run).
func TestWorkersReceiveOnlyTheImagesTheyRun(t *testing.T) {
	all, err := lab.KitImages("v1.34.4")
	if err != nil {
		t.Fatal(err)
	}
	l, w, rb := newLab(t, "v1.34.4")
	if _, err := l.Perform(context.Background(), rb, nil); err != nil {
		t.Fatal(err)
	}
	for _, n := range kubeNodes(l.Rack) {
		var got []string
		for _, src := range fedTo(w, n) {
			if name, ok := strings.CutSuffix(path.Base(src), ".tar"); ok {
				got = append(got, name)
			}
		}
		slices.Sort(got)
		want := all
		if !l.Rack.Node(n).HasRole(topology.RoleServer) {
			want = []string{"coredns", "kube-proxy", "pause"}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s received %v, want %v", n, got, want)
		}
	}
	if _, err := lab.KitImages("v9.9.9"); err == nil || !strings.Contains(err.Error(), "v1.34.4") {
		t.Errorf("a release without a kit: %v, want an error naming the kits there are", err)
	}
}

// kubeadm upgrades CoreDNS and kube-proxy once every control-plane node is
// upgraded, rewriting the CoreDNS Deployment: the lab's placement of CoreDNS
// is applied again right after the last server's kubeadm upgrade node, on
// that server, and waited for. (A rehearsal found CoreDNS's replicas on
// server-1 and server-2 after the upgrade; re-applying it after upgrade
// apply was too early: "patched (no change)".)
func TestCoreDNSPlacedAgainAfterTheAddOns(t *testing.T) {
	l, w, rb := newLab(t, "v1.34.4")
	l.DNSPlacement = `{"spec":{}}`
	if _, err := l.Perform(context.Background(), rb, nil); err != nil {
		t.Fatal(err)
	}
	servers := []string{}
	for _, n := range kubeNodes(l.Rack) {
		if strings.HasPrefix(n, "server-") {
			servers = append(servers, n)
		}
	}
	last := servers[len(servers)-1]
	addons := slices.Index(w.log, last+": kubeadm upgrade node")
	patch := slices.IndexFunc(w.log, func(s string) bool { return strings.Contains(s, "patch deployment coredns") })
	rollout := slices.IndexFunc(w.log, func(s string) bool { return strings.Contains(s, "rollout status deployment/coredns") })
	if addons < 0 || patch != addons+1 || rollout != patch+1 || !strings.HasPrefix(w.log[patch], last+": kubectl --kubeconfig /etc/kubernetes/admin.conf") {
		t.Errorf("%s's upgrade node at %d, patch at %d, rollout at %d:\n%s", last, addons, patch, rollout, strings.Join(w.log, "\n"))
	}
	if !strings.HasSuffix(w.log[rollout], "--timeout "+l.ReadyTimeout.String()) {
		t.Errorf("CoreDNS's rollout is not bounded by the rehearsal's ready timeout (%s): %s", l.ReadyTimeout, w.log[rollout])
	}
	if n := strings.Count(strings.Join(w.log, "\n"), "patch deployment coredns"); n != 1 {
		t.Errorf("CoreDNS patched %d times, want once", n)
	}
	for _, s := range rb.Steps {
		tells := slices.Contains(s.Check, preflight.CoreDNSReset)
		want := s.Node == last && s.Kind == preflight.StepUpgradeNode
		if tells != want {
			t.Errorf("step %q [%s] tells the operator CoreDNS was rewritten: %v, want %v", s.What, s.Where, tells, want)
		}
	}
}

// A server's new kubelet may restart its API server, which then answers 403
// until its caches are synced: the next machine's step waits until the
// server's own API server has answered /readyz ok for APISteady straight (a
// rehearsal's kubeadm upgrade node on server-2 was refused so, 10 s after
// server-1's kubelet restart). An API server that never gets there fails the
// uncordon step, naming it.
func TestNextServerWaitsForTheRestartedAPIServer(t *testing.T) {
	l, w, rb := newLab(t, "v1.34.4")
	w.notReady = map[string]int{"server-1": 3}
	if _, err := l.Perform(context.Background(), rb, nil); err != nil {
		t.Fatal(err)
	}
	addr := l.Rack.Node("server-1").Address
	var readyz []int
	for i, line := range w.log {
		if strings.HasPrefix(line, "server-1: ") && strings.Contains(line, "--server https://"+addr+":6443") && strings.HasSuffix(line, "get --raw /readyz") {
			readyz = append(readyz, i)
		}
	}
	next := slices.Index(w.log, "server-2: install -m 0755 /opt/rackdrill/kit/bin/kubeadm /usr/bin/kubeadm")
	if len(readyz) < 5 || next < readyz[len(readyz)-1] {
		t.Errorf("server-1's /readyz asked %d times (3 failing, then ok for the steady time), the last at %d, server-2's first step at %d", len(readyz), readyz[len(readyz)-1], next)
	}
	for _, s := range rb.Steps {
		if s.Kind == preflight.StepUncordon && strings.HasPrefix(s.Node, "server-") && !slices.Contains(s.Check, preflight.APIServerSteady(l.Rack.Node(s.Node))) {
			t.Errorf("the runbook's uncordon of %s does not tell the operator to wait for its API server: %q", s.Node, s.Check)
		}
	}

	l, w, rb = newLab(t, "v1.34.4")
	w.notReady = map[string]int{"server-1": 1 << 30}
	_, err := l.Perform(context.Background(), rb, nil)
	var se *StepError
	if !errors.As(err, &se) || se.Mark.Kind != preflight.StepUncordon || se.Mark.Node != "server-1" || !strings.Contains(err.Error(), "informer-sync") {
		t.Errorf("an API server never ready: %v, want the uncordon of server-1 to fail with what /readyz said", err)
	}
}
