package rackstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/poll"
	"rackdrill.dev/rackdrill/harness/topology"
)

// Snapshot is what a fault must leave as it found it: the residue check
// compares one taken in the steady state with one taken after the recovery.
// Every field is a sorted list of "what: state" lines, so that a difference
// reads as what changed.
type Snapshot struct {
	// Machines: "server-1: running".
	Machines []string `json:"machines"`
	// VIP: "172.29.10.100 on lb-1".
	VIP string `json:"vip,omitempty"`
	// Etcd: "server-1: member" for every member that answers, and the count.
	Etcd []string `json:"etcd,omitempty"`
	// Workloads: "Deployment ns/name: 2/2 ready" and the DaemonSets' node
	// selectors, for every Deployment and DaemonSet of the cluster.
	Workloads []string `json:"workloads,omitempty"`
	// Leftovers: iptables chains and tc qdiscs a harness adds (RACKDRILL-*,
	// netem), per node; empty when there are none.
	Leftovers []string `json:"leftovers,omitempty"`
}

// Unready lists the workloads of s that are not fully ready ("2/3 ready"): a
// rack still healing from an earlier fault, not yet in its steady state.
func (s Snapshot) Unready() []string {
	var out []string
	for _, w := range s.Workloads {
		_, counts, ok := strings.Cut(w, ": ")
		if !ok {
			continue
		}
		var ready, want int
		if n, _ := fmt.Sscanf(counts, "%d/%d ready", &ready, &want); n == 2 && ready != want {
			out = append(out, w)
		}
	}
	return out
}

// AcrossAnUpgrade is s as the residue check of an upgrade compares it: etcd's
// members without their version, which the upgrade changes on purpose.
func (s Snapshot) AcrossAnUpgrade() Snapshot {
	out := s
	out.Etcd = nil
	for _, m := range s.Etcd {
		m, _, _ = strings.Cut(m, ", version ")
		out.Etcd = append(out.Etcd, m)
	}
	return out
}

// Take reads a snapshot of rack r.
func Take(ctx context.Context, r *topology.Rack, nodes []cluster.Node, cs kubernetes.Interface) (Snapshot, error) {
	var s Snapshot
	for _, n := range nodes {
		up, err := n.Running(ctx)
		if err != nil {
			return s, fmt.Errorf("state of %s: %w", n.Name(), err)
		}
		state := "stopped"
		if up {
			state = "running"
			out, err := exec.Output(n.Command(ctx, "sh", "-c",
				"iptables-save 2>/dev/null | grep -o '^:RACKDRILL[^ ]*' ; tc qdisc show 2>/dev/null | grep -E 'netem|tbf' || true"))
			if err != nil {
				return s, fmt.Errorf("leftovers on %s: %w", n.Name(), err)
			}
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if l != "" {
					s.Leftovers = append(s.Leftovers, n.Name()+": "+l)
				}
			}
		}
		s.Machines = append(s.Machines, n.Name()+": "+state)
	}
	if ka := r.Spec.ControlPlane.Keepalived; ka != nil {
		vip := r.Spec.ControlPlane.Endpoint.Host
		holder, err := VIPHolder(ctx, nodes, vip)
		if err != nil {
			return s, err
		}
		if holder == "" {
			holder = "nobody"
		}
		s.VIP = vip + " on " + holder
	}
	if r.RunsEtcd() {
		members, err := EtcdStatus(ctx, nodes)
		if err != nil {
			s.Etcd = []string{"unavailable: " + err.Error()}
		}
		for _, m := range members {
			s.Etcd = append(s.Etcd, fmt.Sprintf("%s: member, version %s", m.Node, m.Version))
		}
	}
	if cs != nil {
		w, err := workloads(ctx, cs, r.Spec.Probes.Namespace)
		if err != nil {
			return s, err
		}
		s.Workloads = w
	}
	for _, l := range [][]string{s.Machines, s.Etcd, s.Workloads, s.Leftovers} {
		sort.Strings(l)
	}
	return s, nil
}

// workloads lists every Deployment and DaemonSet with its readiness, except
// the readiness of the probes' own namespace, where the heal probe deletes pods
// all the time: there only the spec counts.
func workloads(ctx context.Context, cs kubernetes.Interface, probesNS string) ([]string, error) {
	var out []string
	deps, err := cs.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list Deployments: %w", err)
	}
	for _, d := range deps.Items {
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		if d.Namespace == probesNS {
			out = append(out, fmt.Sprintf("Deployment %s/%s: %d replicas", d.Namespace, d.Name, want))
			continue
		}
		out = append(out, fmt.Sprintf("Deployment %s/%s: %d/%d ready", d.Namespace, d.Name, d.Status.ReadyReplicas, want))
	}
	dss, err := cs.AppsV1().DaemonSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list DaemonSets: %w", err)
	}
	for _, d := range dss.Items {
		var sel []string
		for k, v := range d.Spec.Template.Spec.NodeSelector {
			sel = append(sel, k+"="+v)
		}
		sort.Strings(sel)
		out = append(out, fmt.Sprintf("DaemonSet %s/%s: %d/%d ready, nodeSelector {%s}", d.Namespace, d.Name,
			d.Status.NumberReady, d.Status.DesiredNumberScheduled, strings.Join(sel, ",")))
	}
	return out, nil
}

// Diff says what differs between before and after, one line per change; empty
// when the rack is as it was.
func Diff(before, after Snapshot) []string {
	var out []string
	lists := func(what string, b, a []string) {
		for _, x := range b {
			if !slices.Contains(a, x) {
				out = append(out, fmt.Sprintf("%s: was %q, now %s", what, x, counterpart(x, a)))
			}
		}
		for _, x := range a {
			if !slices.Contains(b, x) && counterpart(x, b) == "absent" {
				out = append(out, fmt.Sprintf("%s: new %q", what, x))
			}
		}
	}
	lists("machine", before.Machines, after.Machines)
	if before.VIP != after.VIP {
		out = append(out, fmt.Sprintf("API VIP: was %s, now %s", before.VIP, after.VIP))
	}
	lists("etcd", before.Etcd, after.Etcd)
	lists("workload", before.Workloads, after.Workloads)
	// Leftovers are judged absolutely: a harness chain or qdisc must not stay,
	// even one a killed run left before this drill.
	for _, l := range after.Leftovers {
		out = append(out, "left behind: "+l)
	}
	return out
}

// counterpart finds the line of list about the same thing as x (the text before
// ": "), quoted, or "absent".
func counterpart(x string, list []string) string {
	key, _, _ := strings.Cut(x, ": ")
	for _, y := range list {
		if k, _, _ := strings.Cut(y, ": "); k == key {
			return fmt.Sprintf("%q", y)
		}
	}
	return "absent"
}

// WaitSame takes snapshots until one equals before (or timeout passes) and
// returns the differences of the last one.
func WaitSame(ctx context.Context, before Snapshot, timeout time.Duration, take func(context.Context) (Snapshot, error)) ([]string, error) {
	var diff []string
	var last error
	err := poll.Until(ctx, 2*time.Second, timeout, func() (bool, error) {
		after, err := take(ctx)
		diff, last = nil, err
		if err == nil {
			diff = Diff(before, after)
		}
		return err == nil && len(diff) == 0, nil
	})
	if errors.Is(err, poll.ErrLimit) {
		return diff, last
	}
	return diff, err
}

// Steady is the snapshot of a rack's steady state taken before a fault, kept
// in the rack's state folder so that `rackdrill recover` can check, after a killed
// run, that the rack is as it was.
type Steady struct {
	Topology string    `json:"topology"`
	Fault    string    `json:"fault"`
	Taken    time.Time `json:"taken"`
	Snapshot Snapshot  `json:"snapshot"`
}

// SteadyFile is where a run keeps the steady state of its current drill, in
// the rack's state folder.
func SteadyFile(rackDir string) string { return filepath.Join(rackDir, "steady-state.json") }

// SaveSteady writes s to path.
func SaveSteady(path string, s Steady) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// LoadSteady reads what SaveSteady wrote.
func LoadSteady(path string) (Steady, error) {
	var s Steady
	data, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}
