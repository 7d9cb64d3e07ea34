package preflight

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"rackdrill.dev/rackdrill/harness/topology"
)

// Runbook is the ordered upgrade of one rack to a release, machine by machine,
// as its operator performs it: derived from the topology (which machines, in
// which order, with which distribution), never run by rackdrill on a real rack.
type Runbook struct {
	Rack         string                `json:"rack"`
	Distribution topology.Distribution `json:"distribution"`
	From         string                `json:"from"`
	To           string                `json:"to"`
	// Notes are what this rack's shape means for the upgrade (an API outage
	// where nothing can avoid one, the order chosen and why).
	Notes []string      `json:"notes,omitempty"`
	Steps []RunbookStep `json:"steps"`
}

// RunbookStep is one step: where it runs, what it runs, and what must hold
// before the next step begins.
type RunbookStep struct {
	// Where is a machine of the rack, or Operator: kubectl with the rack's
	// admin credentials, from the operator's machine.
	Where string   `json:"where"`
	What  string   `json:"what"`
	Run   []string `json:"run"`
	Check []string `json:"check,omitempty"`
	// Kind is what the step does, whatever the commands that do it on this
	// rack: the rehearsal performs each kind on the lab its own way.
	Kind StepKind `json:"kind"`
	// Node is the machine the step upgrades, drains or uncordons ("" for the
	// rack-wide steps).
	Node string `json:"node,omitempty"`
}

// StepKind is what a runbook step does.
type StepKind string

// The kinds of step, in the order a machine goes through them.
const (
	StepPreflight    StepKind = "preflight"     // the rack conforms and may be upgraded
	StepSnapshot     StepKind = "snapshot"      // the etcd snapshot
	StepKubeadm      StepKind = "kubeadm"       // the target's kubeadm installed
	StepUpgradeApply StepKind = "upgrade-apply" // kubeadm upgrade plan and apply (first server)
	StepUpgradeNode  StepKind = "upgrade-node"  // kubeadm upgrade node (the others)
	StepDrain        StepKind = "drain"
	StepKubelet      StepKind = "kubelet" // the target's kubelet and kubectl, kubelet restarted
	StepK3sBinary    StepKind = "k3s-binary"
	StepUncordon     StepKind = "uncordon" // and the node Ready at the target
	StepAfter        StepKind = "after"    // the rack at the target, as it was
)

// Operator is where kubectl runs: the operator's machine.
const Operator = "operator"

var (
	kubeadmRelease = regexp.MustCompile(`^v(\d+)\.(\d+)\.(\d+)$`)
	k3sRelease     = regexp.MustCompile(`^v(\d+)\.(\d+)\.(\d+)\+k3s(\d+)$`)
	// releaseParts: major, minor, patch and K3s revision of a release the
	// topology's validation or the two above accepted.
	releaseParts = regexp.MustCompile(`^v?(\d+)\.(\d+)\.(\d+)(?:\+k3s(\d+))?`)
)

// NewRunbook is the upgrade of rack r to release to: kubeadm's own upgrade
// (upgrade apply on the first server, upgrade node on the others, then each
// worker) or K3s's manual upgrade (the k3s binary replaced server by server,
// then on each agent), every node drained first and uncordoned and seen Ready
// at the new version before the next. A target the version skew policy
// refuses from the topology's version is refused with the policy's reason.
func NewRunbook(r *topology.Rack, to string) (Runbook, error) {
	k := r.Spec.Kubernetes
	rb := Runbook{Rack: r.Metadata.Name, Distribution: k.Distribution, From: k.Version, To: to}
	switch k.Distribution {
	case topology.DistributionK3s:
		if !k3sRelease.MatchString(to) {
			return rb, fmt.Errorf("--to %q: a K3s release names its K3s revision, e.g. v1.34.4+k3s1 (see github.com/k3s-io/k3s/releases)", to)
		}
	default:
		if !kubeadmRelease.MatchString(to) {
			return rb, fmt.Errorf("--to %q: the runbook needs a release, e.g. v1.34.4 (kubeadm upgrade apply takes one)", to)
		}
	}
	from, err := ParseMinor(k.Version)
	if err != nil {
		return rb, fmt.Errorf("spec.kubernetes.version: %w", err)
	}
	target, _ := ParseMinor(to)
	// The rack as its topology documents it: every component at its version.
	v := Versions{APIServer: map[string]string{}, Kubelet: map[string]string{}}
	for _, n := range r.NodesWithRole(topology.RoleServer) {
		v.APIServer[n.Name] = k.Version
	}
	for _, n := range kubeNodes(r) {
		v.Kubelet[n.Name] = k.Version
	}
	if problems := CheckSkew(v, target); len(problems) > 0 {
		return rb, fmt.Errorf("--to %s from %s (spec.kubernetes.version): the version skew policy refuses it: %s", to, k.Version, strings.Join(problems, "; "))
	}
	if !newer(to, k.Version) {
		return rb, fmt.Errorf("--to %s: not newer than the rack's %s (spec.kubernetes.version)", to, k.Version)
	}
	servers := upgradeOrder(r, &rb)
	var workers []*topology.Node
	for _, n := range kubeNodes(r) {
		if !n.HasRole(topology.RoleServer) {
			workers = append(workers, n)
		}
	}
	rb.Notes = append(rb.Notes, shapeNotes(r, len(servers))...)
	if k.Distribution == topology.DistributionK3s {
		rb.Steps = k3sSteps(r, servers, workers, to)
	} else {
		rb.Steps = kubeadmSteps(r, servers, workers, from, target, to)
	}
	return rb, nil
}

// newer says whether release a comes after release b: major, minor, patch,
// then the K3s revision.
func newer(a, b string) bool {
	parts := func(v string) []int {
		var out []int
		m := releaseParts.FindStringSubmatch(v)
		for _, f := range m[1:] {
			n, _ := strconv.Atoi(f) // "" (no K3s revision) is 0
			out = append(out, n)
		}
		return out
	}
	return slices.Compare(parts(a), parts(b)) > 0
}

// kubeNodes are the rack's Kubernetes nodes, in topology order.
func kubeNodes(r *topology.Rack) []*topology.Node {
	var out []*topology.Node
	for i := range r.Spec.Nodes {
		n := &r.Spec.Nodes[i]
		if n.HasRole(topology.RoleServer) || n.HasRole(topology.RoleWorker) {
			out = append(out, n)
		}
	}
	return out
}

// upgradeOrder is the order of the servers: topology order, but where the
// VIP lives on the servers themselves (no HAProxy in front of them), the
// keepalived MASTER last, so that the API behind the VIP restarts once.
func upgradeOrder(r *topology.Rack, rb *Runbook) []*topology.Node {
	servers := r.NodesWithRole(topology.RoleServer)
	cp := r.Spec.ControlPlane
	if cp.Keepalived == nil || cp.HAProxy != nil {
		return servers
	}
	master := cp.Keepalived.Master()
	i := slices.IndexFunc(servers, func(n *topology.Node) bool { return n.Name == master })
	if i < 0 || len(servers) < 2 {
		return servers
	}
	m := servers[i]
	servers = append(slices.Delete(slices.Clone(servers), i, i+1), m)
	rb.Notes = append(rb.Notes, fmt.Sprintf("%s is keepalived's MASTER and the VIP %s reaches its own API server (no HAProxy): it is upgraded last. "+
		"While its kube-apiserver restarts the API is unreachable through the VIP, unless keepalived moves the VIP first: "+
		"stop keepalived on %s before its step and start it after its uncordon, to upgrade it behind a BACKUP.", m.Name, cp.Endpoint.Host, m.Name))
	return servers
}

// shapeNotes say what the rack's shape costs during the upgrade.
func shapeNotes(r *topology.Rack, servers int) []string {
	var out []string
	switch {
	case servers == 1:
		out = append(out, "the rack has one server: the API is down while it restarts on the new version (the apps keep running; nothing reschedules meanwhile)")
	case servers < 3 || topology.Quorum(servers) == servers:
		out = append(out, fmt.Sprintf("%d etcd members: the quorum is %d, so each server's restart stops the API until it is back (the apps keep running)",
			servers, topology.Quorum(servers)))
	}
	if len(r.AppNodes()) == 1 {
		out = append(out, fmt.Sprintf("one node runs the apps (%s): its drain stops them until its uncordon", r.AppNodes()[0].Name))
	}
	return out
}

// The commands of one node, kubeadm's: https://kubernetes.io/docs/tasks/administer-cluster/kubeadm/kubeadm-upgrade/
func kubeadmSteps(r *topology.Rack, servers, workers []*topology.Node, from, target Minor, to string) []RunbookStep {
	pkg := strings.TrimPrefix(to, "v") + "-*"
	repo := []string{}
	if from != target {
		// pkgs.k8s.io has one repository per minor.
		repo = append(repo, fmt.Sprintf("sudo sed -i 's#/%s/#/%s/#' /etc/apt/sources.list.d/kubernetes.list", from, target))
	}
	kubeadm := append(slices.Clone(repo),
		"sudo apt-mark unhold kubeadm",
		"sudo apt-get update",
		fmt.Sprintf("sudo apt-get install -y kubeadm='%s'", pkg),
		"sudo apt-mark hold kubeadm")
	kubelet := []string{
		"sudo apt-mark unhold kubelet kubectl",
		fmt.Sprintf("sudo apt-get install -y kubelet='%s' kubectl='%s'", pkg, pkg),
		"sudo apt-mark hold kubelet kubectl",
		"sudo systemctl daemon-reload",
		"sudo systemctl restart kubelet",
	}
	var steps []RunbookStep
	steps = append(steps, before(r, to)...)
	node := func(n *topology.Node, upgrade []string, what string, kind StepKind) {
		steps = append(steps,
			RunbookStep{Where: n.Name, What: "kubeadm " + to, Run: kubeadm, Check: []string{"kubeadm version -o short prints " + to},
				Kind: StepKubeadm, Node: n.Name},
			RunbookStep{Where: n.Name, What: what, Run: upgrade, Check: upgradeChecks(r, n, to), Kind: kind, Node: n.Name},
			drainStep(n),
			RunbookStep{Where: n.Name, What: "kubelet and kubectl " + to, Run: kubelet, Check: []string{"systemctl is-active kubelet"},
				Kind: StepKubelet, Node: n.Name},
			uncordonStep(n, to))
	}
	for i, n := range servers {
		// kubeadm upgrades CoreDNS and kube-proxy once every control-plane
		// node is upgraded: with the last server's step (kubeadm's
		// phases/upgrade/addons.go skips them before).
		last := i == len(servers)-1
		addons := ""
		if last {
			addons = ", then CoreDNS and kube-proxy"
		}
		if i == 0 {
			node(n, []string{"sudo kubeadm upgrade plan " + to, "sudo kubeadm upgrade apply -y " + to},
				"the control plane and etcd"+addons+" (kubeadm upgrade apply, on the first server only)", StepUpgradeApply)
		} else {
			node(n, []string{"sudo kubeadm upgrade node"}, "this server's control plane and etcd"+addons+" (kubeadm upgrade node)", StepUpgradeNode)
		}
		if last {
			// kubeadm applies CoreDNS's Deployment from its own template:
			// what the rack changed in it (placement, replicas) is lost.
			steps[len(steps)-4].Check = append(steps[len(steps)-4].Check, CoreDNSReset)
		}
	}
	for _, n := range workers {
		node(n, []string{"sudo kubeadm upgrade node"}, "this node's kubelet configuration (kubeadm upgrade node)", StepUpgradeNode)
	}
	return append(steps, after(r, to))
}

// k3sAsset is the name of the k3s binary of a release for arch.
func k3sAsset(arch string) (binary, sums string) {
	switch arch {
	case "arm64":
		return "k3s-arm64", "sha256sum-arm64.txt"
	case "arm":
		return "k3s-armhf", "sha256sum-arm.txt"
	}
	return "k3s", "sha256sum-amd64.txt"
}

// The commands of one node, K3s's manual upgrade: https://docs.k3s.io/upgrades/manual
// (the binary replaced, servers one at a time, then the agents).
func k3sSteps(r *topology.Rack, servers, workers []*topology.Node, to string) []RunbookStep {
	url := "https://github.com/k3s-io/k3s/releases/download/" + strings.ReplaceAll(to, "+", "%2B")
	var steps []RunbookStep
	steps = append(steps, before(r, to)...)
	node := func(n *topology.Node, unit string, server bool) {
		bin, sums := k3sAsset(n.Arch)
		checks := []string{"systemctl is-active " + unit, "k3s --version prints " + to}
		if server {
			checks = append(checks, upgradeChecks(r, n, to)...)
		}
		steps = append(steps,
			drainStep(n),
			RunbookStep{Where: n.Name, What: "the k3s binary " + to + " (" + bin + "), then " + unit + " restarted", Run: []string{
				"cd \"$(mktemp -d)\"",
				fmt.Sprintf("curl -fsSLO %s/%s", url, bin),
				fmt.Sprintf("curl -fsSLO %s/%s", url, sums),
				fmt.Sprintf("grep ' %s$' %s | sha256sum -c -", bin, sums),
				fmt.Sprintf("sudo install -m 0755 %s /usr/local/bin/k3s", bin),
				"sudo systemctl restart " + unit,
			}, Check: checks, Kind: StepK3sBinary, Node: n.Name},
			uncordonStep(n, to))
	}
	for _, n := range servers {
		node(n, "k3s", true)
	}
	for _, n := range workers {
		node(n, "k3s-agent", false)
	}
	return append(steps, after(r, to))
}

// before: the rack conforms, the upgrade is allowed, and its data is saved.
func before(r *topology.Rack, to string) []RunbookStep {
	snapshot := RunbookStep{Where: Operator, What: "an etcd snapshot, verified, kept outside the rack",
		Run: []string{"(written by rackdrill preflight: <artifacts>/preflight/etcd-snapshot.db)"}, Kind: StepSnapshot}
	if r.Spec.Kubernetes.Distribution == topology.DistributionK3s {
		servers := r.NodesWithRole(topology.RoleServer)
		snapshot = RunbookStep{Where: servers[0].Name, What: "an etcd snapshot, kept outside the rack (K3s's embedded etcd; with SQLite, copy /var/lib/rancher/k3s/server/db while k3s is stopped)",
			Run: []string{"sudo k3s etcd-snapshot save --name pre-upgrade", "sudo ls /var/lib/rancher/k3s/server/db/snapshots/"}, Kind: StepSnapshot}
	}
	return []RunbookStep{
		{Where: Operator, What: "the rack conforms and may be upgraded", Run: []string{"rackdrill preflight --to " + to + " --topology <this rack's file>"},
			Check: []string{"exit status 0: conformance, version skew, drains, removed APIs"}, Kind: StepPreflight},
		snapshot,
	}
}

func drainStep(n *topology.Node) RunbookStep {
	return RunbookStep{Where: Operator, What: "drain " + n.Name + " (PodDisruptionBudgets honoured: drain waits for them)",
		Run:   []string{"kubectl drain " + n.Name + " --ignore-daemonsets --delete-emptydir-data --timeout=10m"},
		Check: []string{"every pod but DaemonSets' left " + n.Name}, Kind: StepDrain, Node: n.Name}
}

func uncordonStep(n *topology.Node, to string) RunbookStep {
	checks := []string{fmt.Sprintf("kubectl get node %s: Ready, VERSION %s, before the next node", n.Name, strings.SplitN(to, "+", 2)[0])}
	if n.HasRole(topology.RoleServer) {
		checks = append(checks, APIServerSteady(n))
	}
	return RunbookStep{Where: Operator, What: "uncordon " + n.Name, Run: []string{"kubectl uncordon " + n.Name},
		Check: checks, Kind: StepUncordon, Node: n.Name}
}

// APIServerSteadyFor is how long a server's own API server must answer
// /readyz, without a failure, before the next machine's step.
const APIServerSteadyFor = 15 * time.Second

// APIServerSteady is the check after a server's kubelet was replaced: the
// new kubelet may restart the static pods, and an API server that has just
// started answers requests, through the load balancer too, before its caches
// are synced: with 403 Forbidden to the cluster's admin (a rehearsal's
// kubeadm upgrade node on the next server failed so, 10 s after the previous
// server's kubelet restart).
func APIServerSteady(n *topology.Node) string {
	return fmt.Sprintf("kubectl get --raw /readyz --server https://%s answers ok for %s straight (not through the endpoint): the new kubelet may restart the control plane's static pods, and a restarted API server answers 403 until its caches are synced",
		net.JoinHostPort(n.Address, strconv.Itoa(topology.DefaultAPIPort)), APIServerSteadyFor)
}

// upgradeChecks are what must hold after a server's control plane moved.
// CoreDNSReset is the check after the step in which kubeadm upgrades the
// add-ons (the last server's): it rewrites the CoreDNS Deployment from its
// own template (found by the rehearsal: the lab's placement of CoreDNS on the
// workers was gone after it).
const CoreDNSReset = "kubeadm rewrote the CoreDNS Deployment: re-apply what the rack changes in it (placement, replicas), then kubectl -n kube-system rollout status deployment/coredns"

func upgradeChecks(r *topology.Rack, n *topology.Node, to string) []string {
	if !n.HasRole(topology.RoleServer) {
		return nil
	}
	return []string{
		"kubectl get --raw /readyz through the endpoint " + r.Spec.ControlPlane.Endpoint.Host + " answers ok",
		"every etcd member healthy (etcdctl endpoint health --cluster)",
	}
}

// after: the rack conforms at the new version, as it was before.
func after(r *topology.Rack, to string) RunbookStep {
	return RunbookStep{Where: Operator, What: "the rack at " + to + ", as it was",
		Run:   []string{"rackdrill run --topology <this rack's file> --label-filter conformance (spec.kubernetes.version set to " + to + ")"},
		Check: []string{"every conformance check passes: same machines, VIP holder, etcd members and workloads"}, Kind: StepAfter}
}

// Text is the runbook as the operator reads it, one numbered step per line
// group.
func (rb Runbook) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Upgrade runbook for rack %s (%s): %s to %s. rackdrill runs none of it on a real rack.\n", rb.Rack, rb.Distribution, rb.From, rb.To)
	for _, n := range rb.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	for i, s := range rb.Steps {
		fmt.Fprintf(&b, "\n%2d. [%s] %s\n", i+1, s.Where, s.What)
		for _, c := range s.Run {
			fmt.Fprintf(&b, "      $ %s\n", c)
		}
		for _, c := range s.Check {
			fmt.Fprintf(&b, "      check: %s\n", c)
		}
	}
	return b.String()
}
