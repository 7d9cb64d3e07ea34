package preflight

import (
	"slices"
	"strings"
	"testing"

	"rackdrill.dev/rackdrill/harness/topology"
)

func loadExample(t *testing.T, name string) *topology.Rack {
	t.Helper()
	r, _, err := topology.Load("../../kind-configs/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// index is the first step on where whose commands or description contain s.
func index(rb Runbook, where, s string) int {
	return slices.IndexFunc(rb.Steps, func(st RunbookStep) bool {
		return st.Where == where && (strings.Contains(st.What, s) || slices.ContainsFunc(st.Run, func(c string) bool { return strings.Contains(c, s) }))
	})
}

// ordered asserts that every node is drained, upgraded and uncordoned in that
// order, and uncordoned before the next node's first step.
func ordered(t *testing.T, rb Runbook, nodes []string, upgrade string) {
	t.Helper()
	// The steps before the first node's: preflight, then the etcd snapshot.
	start := slices.IndexFunc(rb.Steps, func(st RunbookStep) bool { return strings.Contains(st.What, "etcd snapshot") })
	if start < 0 {
		t.Fatalf("no etcd snapshot step:\n%s", rb.Text())
	}
	prev := start
	for _, n := range nodes {
		first := slices.IndexFunc(rb.Steps[start+1:], func(st RunbookStep) bool {
			return st.Where == n || strings.Contains(strings.Join(st.Run, " "), " "+n+" ") || strings.HasSuffix(strings.Join(st.Run, " "), " "+n)
		}) + start + 1
		drain := index(rb, Operator, "kubectl drain "+n+" ")
		up := index(rb, n, upgrade)
		unc := index(rb, Operator, "kubectl uncordon "+n)
		if first == start || drain < 0 || up < 0 || unc < 0 {
			t.Errorf("%s: drain %d, %q %d, uncordon %d: a step is missing\n%s", n, drain, upgrade, up, unc, rb.Text())
			continue
		}
		if !(drain < up && up < unc) {
			t.Errorf("%s: drain at %d, %q at %d, uncordon at %d: not in that order", n, drain+1, upgrade, up+1, unc+1)
		}
		if first <= prev {
			t.Errorf("%s begins at step %d, before the step %d that came before it ended", n, first+1, prev+1)
		}
		prev = unc
	}
}

func names(ns []*topology.Node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.Name)
	}
	return out
}

// Seed 001 (kubeadm, HAProxy in front of three servers): kubeadm's own
// upgrade, upgrade apply once on the first server, upgrade node on the others
// and on every worker, servers before workers, each node drained before its
// kubelet moves and uncordoned before the next; the load balancers, the NAS
// and the VPS are not Kubernetes nodes and have no step.
func TestRunbookKubeadmSeed001(t *testing.T) {
	r := loadExample(t, "rack-seed001.example.yaml")
	rb, err := NewRunbook(r, "v1.33.13")
	if err != nil {
		t.Fatal(err)
	}
	servers := names(r.NodesWithRole(topology.RoleServer))
	workers := names(r.NodesWithRole(topology.RoleWorker))
	ordered(t, rb, append(slices.Clone(servers), workers...), "systemctl restart kubelet")
	applies := 0
	for _, st := range rb.Steps {
		for _, c := range st.Run {
			if strings.Contains(c, "kubeadm upgrade apply") {
				applies++
				if st.Where != servers[0] {
					t.Errorf("kubeadm upgrade apply on %s, want the first server %s", st.Where, servers[0])
				}
			}
		}
	}
	if applies != 1 {
		t.Errorf("kubeadm upgrade apply appears %d times, want once", applies)
	}
	for _, n := range append(servers[1:], workers...) {
		if index(rb, n, "sudo kubeadm upgrade node") < 0 {
			t.Errorf("%s has no kubeadm upgrade node", n)
		}
	}
	for _, n := range []string{"n100-004", "nas-001", "vps"} {
		if slices.ContainsFunc(rb.Steps, func(st RunbookStep) bool {
			return st.Where == n || strings.Contains(strings.Join(st.Run, " "), " "+n+" ")
		}) {
			t.Errorf("%s is not a Kubernetes node, yet has a step", n)
		}
	}
	if index(rb, servers[0], "/v1.32/#/v1.33/") < 0 {
		t.Error("the minor changes, yet apt is not pointed at v1.33's repository")
	}
	if !strings.Contains(rb.Text(), "rackdrill preflight --to v1.33.13") || !strings.Contains(rb.Steps[len(rb.Steps)-1].Run[0], "--label-filter conformance") {
		t.Errorf("the runbook does not begin with preflight and end with conformance:\n%s", rb.Text())
	}
}

// Seed 000 (K3s, the VIP on the two servers, no HAProxy): the k3s binary
// replaced server by server, keepalived's MASTER last (and said why), then the
// agent; the quorum of two etcd members said.
func TestRunbookK3sSeed000(t *testing.T) {
	r := loadExample(t, "rack-seed000.example.yaml")
	rb, err := NewRunbook(r, "v1.34.4+k3s1")
	if err != nil {
		t.Fatal(err)
	}
	ordered(t, rb, []string{"styx", "tartaro", "niflheim"}, "systemctl restart k3s")
	if index(rb, "niflheim", "systemctl restart k3s-agent") < 0 || index(rb, "tartaro", "systemctl restart k3s-agent") >= 0 {
		t.Errorf("agents restart k3s-agent, servers k3s:\n%s", rb.Text())
	}
	notes := strings.Join(rb.Notes, "\n")
	for _, want := range []string{"tartaro is keepalived's MASTER", "upgraded last", "2 etcd members"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	if index(rb, "styx", "releases/download/v1.34.4%2Bk3s1/k3s") < 0 {
		t.Errorf("the release's binary is not fetched by its URL:\n%s", rb.Text())
	}
}

// Seed 002 (K3s, one x86 server, ARM workers, a NAS appliance): each machine
// gets its architecture's binary; the one server's outage is said.
func TestRunbookK3sSeed002(t *testing.T) {
	r := loadExample(t, "rack-seed002.example.yaml")
	rb, err := NewRunbook(r, "v1.33.6+k3s1")
	if err != nil {
		t.Fatal(err)
	}
	if index(rb, "itx-2u", "/k3s\n") >= 0 || index(rb, "banana-pi-m5", "k3s-arm64") < 0 || index(rb, "itx-2u", "sha256sum-amd64.txt") < 0 {
		t.Errorf("binaries by architecture:\n%s", rb.Text())
	}
	if index(rb, "mycloud-ex2", "k3s") >= 0 {
		t.Error("the NAS appliance is not a node, yet gets k3s")
	}
	if !strings.Contains(strings.Join(rb.Notes, "\n"), "one server") {
		t.Errorf("notes: %v", rb.Notes)
	}
}

func TestRunbookRefuses(t *testing.T) {
	seed001 := loadExample(t, "rack-seed001.example.yaml") // kubeadm v1.32.3
	seed000 := loadExample(t, "rack-seed000.example.yaml") // K3s v1.33.5+k3s1
	for _, tc := range []struct {
		r    *topology.Rack
		to   string
		want string
	}{
		{seed001, "v1.34.4", "skips a minor: kube-apiserver v1.32 must go to v1.33 first"},
		{seed001, "v1.32.1", "not newer than the rack's v1.32.3"},
		{seed001, "v1.32.3", "not newer"},
		{seed001, "v1.33.x", "needs a release"},
		{seed001, "v1.33.4+k3s1", "needs a release"},
		{seed000, "v1.34.4", "a K3s release names its K3s revision"},
		{seed000, "v1.33.5+k3s1", "not newer"},
		{seed000, "v1.33.5+k3s2", ""},
	} {
		_, err := NewRunbook(tc.r, tc.to)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s to %s: %v", tc.r.Metadata.Name, tc.to, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s to %s: %v, want %q", tc.r.Metadata.Name, tc.to, err, tc.want)
		}
	}
}

// Every step says what it does (its kind), so that the rehearsal performs
// each one on the lab: per node, kubeadm's order (kubeadm, its upgrade, drain,
// kubelet, uncordon) or K3s's (drain, binary, uncordon), between the
// rack-wide steps.
func TestRunbookStepKinds(t *testing.T) {
	for _, c := range []struct {
		file, to string
		node     []StepKind
	}{
		{"rack-seed001.example.yaml", "v1.33.5", []StepKind{StepKubeadm, "", StepDrain, StepKubelet, StepUncordon}},
		{"lab.yaml", "v1.34.4", []StepKind{StepKubeadm, "", StepDrain, StepKubelet, StepUncordon}},
		{"rack-seed000.example.yaml", "v1.34.4+k3s1", []StepKind{StepDrain, StepK3sBinary, StepUncordon}},
	} {
		t.Run(c.file, func(t *testing.T) {
			r := loadExample(t, c.file)
			rb, err := NewRunbook(r, c.to)
			if err != nil {
				t.Fatal(err)
			}
			kinds := func(steps []RunbookStep) []StepKind {
				var out []StepKind
				for _, s := range steps {
					out = append(out, s.Kind)
				}
				return out
			}
			all := kinds(rb.Steps)
			if !slices.Equal(all[:2], []StepKind{StepPreflight, StepSnapshot}) || all[len(all)-1] != StepAfter {
				t.Fatalf("rack-wide steps: %v", all)
			}
			body := rb.Steps[2 : len(rb.Steps)-1]
			per := len(c.node)
			if len(body) != per*len(kubeNodes(r)) {
				t.Fatalf("%d node steps for %d nodes: %v", len(body), len(kubeNodes(r)), all)
			}
			for i := 0; i < len(body); i += per {
				node := body[i].Node
				got := kinds(body[i : i+per])
				want := slices.Clone(c.node)
				if j := slices.Index(want, ""); j >= 0 {
					want[j] = StepUpgradeNode
					if i == 0 {
						want[j] = StepUpgradeApply
					}
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s: kinds %v, want %v", node, got, want)
				}
				for _, s := range body[i : i+per] {
					if s.Node != node || r.Node(node) == nil {
						t.Errorf("step %q of %s names node %q", s.What, node, s.Node)
					}
				}
			}
		})
	}
}
