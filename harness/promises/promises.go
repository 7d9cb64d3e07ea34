package promises

import (
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/topology"
)

// The documented rows whose promises stand for a kind of loss.
const (
	oneServer   = "server-kill-1"
	quorumLost  = "server-kill-2"
	vipMoves    = "lb-master-lost"
	apiLBGone   = "cp-lb-lost"
	nasGone     = "nfs-lost"
	workerGone  = "worker-lost"
	vpsGone     = "tunnel-server-lost"
	labelQuorum = "quorum"
)

// Change is one promise of a row that differs on this rack from the
// document's.
type Change struct {
	// Probe is the cell's probe; empty for the row's own settings (labels,
	// budgets).
	Probe      string `json:"probe,omitempty"`
	What       string `json:"what,omitempty"`
	Documented string `json:"documented"`
	Derived    string `json:"derived"`
	// Unkeepable: the document promises the path stays up, and this rack
	// cannot keep that promise.
	Unkeepable bool `json:"unkeepable,omitempty"`
}

// Row is the derivation of one row of the matrix.
type Row struct {
	Fault  string `json:"fault"`
	Source string `json:"source"`
	// NotApplicable says why the fault cannot exist on this rack.
	NotApplicable string   `json:"notApplicable,omitempty"`
	Reasons       []string `json:"reasons,omitempty"`
	Changes       []Change `json:"changes,omitempty"`
}

// Derivation is the matrix of one rack and how it differs from the
// documented one.
type Derivation struct {
	// Matrix is the rack's matrix: the documented rows, each with the
	// promises this rack can keep. Drills are judged against it.
	Matrix *matrix.Matrix `json:"-"`
	Rows   []Row          `json:"rows"`
	// choices are, for a row whose machines are chosen at injection (the
	// etcd leader), the row each choice promises; Matrix holds what every
	// choice keeps.
	choices map[string][]choice
}

type choice struct {
	machines []string
	row      matrix.Row
}

// ForTargets is the row of fault when the drill took exactly the machines
// given (in any order): stricter than the Matrix's row, which must hold
// whichever machines are chosen. nil when the row's promises do not depend
// on the choice, or no choice took those machines.
func (d *Derivation) ForTargets(fault string, machines []string) *matrix.Row {
	want := slices.Sorted(slices.Values(machines))
	for _, c := range d.choices[fault] {
		if slices.Equal(c.machines, want) {
			row := copyRow(c.row)
			return &row
		}
	}
	return nil
}

// Differs reports whether the row differs from the document's on this rack:
// not applicable, or with a promise or setting changed.
func (r *Row) Differs() bool { return r.NotApplicable != "" || len(r.Changes) > 0 }

// Differs reports whether any row differs from the document.
func (d *Derivation) Differs() bool {
	return slices.ContainsFunc(d.Rows, func(r Row) bool { return r.Differs() })
}

// Unkeepable lists the rows that hold a promise of the document this rack
// cannot keep.
func (d *Derivation) Unkeepable() []Row {
	var out []Row
	for _, r := range d.Rows {
		if slices.ContainsFunc(r.Changes, func(c Change) bool { return c.Unkeepable }) {
			out = append(out, r)
		}
	}
	return out
}

// Row returns the derivation of fault's row, or nil.
func (d *Derivation) Row(fault string) *Row {
	for i := range d.Rows {
		if d.Rows[i].Fault == fault {
			return &d.Rows[i]
		}
	}
	return nil
}

// Derive derives rack r's matrix (under provider p) from the documented
// matrix m, which it leaves unchanged.
func Derive(m *matrix.Matrix, r *topology.Rack, p topology.ProviderName) (*Derivation, error) {
	out := *m
	out.Rows = make([]matrix.Row, len(m.Rows))
	d := &Derivation{Matrix: &out}
	for i, doc := range m.Rows {
		out.Rows[i] = copyRow(doc)
		pl, err := fault.PlanFor(doc.Fault, r, p)
		if err != nil {
			return nil, err
		}
		dr := Row{Fault: doc.Fault, Source: doc.Source}
		switch {
		case !pl.Applicable:
			dr.NotApplicable = pl.Why
		case pl.Power || len(pl.Loses.Of) == 0:
			// The power drill promises an order of halts, not cells; a
			// fault on cluster objects takes no machine with it.
		default:
			row, reasons, chosen := deriveRow(m, r, doc, pl)
			if len(chosen) > 1 {
				if d.choices == nil {
					d.choices = map[string][]choice{}
				}
				d.choices[doc.Fault] = chosen
			}
			dr.Reasons = reasons
			dr.Changes = changes(doc, row)
			out.Rows[i] = row
		}
		d.Rows = append(d.Rows, dr)
	}
	return d, nil
}

// outcome is the row derived for one choice of targets.
type outcome struct {
	row     matrix.Row
	reasons []string
}

func deriveRow(m *matrix.Matrix, r *topology.Rack, doc matrix.Row, pl fault.Plan) (matrix.Row, []string, []choice) {
	var outs []outcome
	var chosen []choice
	choices := combinations(pl.Loses.Of, pl.Loses.Count)
	for _, c := range choices {
		o := deriveChoice(m, r, doc, pl, c)
		outs = append(outs, o)
		chosen = append(chosen, choice{machines: slices.Sorted(slices.Values(c)), row: o.row})
	}
	row := outs[0].row
	for _, o := range outs[1:] {
		row = agree(row, o.row)
	}
	// Reasons every choice shares are said once; the others name their
	// choice.
	var reasons []string
	for _, o := range outs {
		for _, why := range o.reasons {
			all := !slices.ContainsFunc(outs, func(x outcome) bool { return !slices.Contains(x.reasons, why) })
			if !all {
				why = fmt.Sprintf("if the fault takes %s: %s", strings.Join(choices[slices.IndexFunc(outs, func(x outcome) bool { return slices.Contains(x.reasons, why) })], " and "), why)
			}
			if !slices.Contains(reasons, why) {
				reasons = append(reasons, why)
			}
		}
	}
	for p, c := range row.Cells {
		if c.During == matrix.Any && doc.Cells[p].During != matrix.Any {
			c.Note = joinNote(c.Note, "depends on the machine chosen at injection")
			row.Cells[p] = c
		}
	}
	return row, reasons, chosen
}

// deriveChoice derives the row when the fault takes the machines of choice.
func deriveChoice(m *matrix.Matrix, r *topology.Rack, doc matrix.Row, pl fault.Plan, choice []string) outcome {
	var o outcome
	// lost is every role the fault takes, per machine.
	lost := map[string][]topology.Role{}
	for _, name := range choice {
		n := r.Node(name)
		if n == nil {
			continue
		}
		if pl.Loses.Whole {
			lost[name] = n.Roles
			if len(n.Roles) > 1 {
				o.reasons = append(o.reasons, fmt.Sprintf("%s goes down whole and holds the roles %s: it loses them all at once", name, roleList(n.Roles)))
			}
			continue
		}
		for _, role := range pl.Loses.Roles {
			if n.HasRole(role) {
				lost[name] = append(lost[name], role)
			}
		}
	}
	has := func(name string, role topology.Role) bool { return slices.Contains(lost[name], role) }

	base := doc
	var parts []string // the documented rows whose promises the loss brings
	add := func(name, why string) {
		if name == doc.Fault || slices.Contains(parts, name) {
			return
		}
		if m.Row(name) == nil {
			o.reasons = append(o.reasons, fmt.Sprintf("%s, but the matrix has no row %s to take its promises from", why, name))
			return
		}
		parts = append(parts, name)
		o.reasons = append(o.reasons, fmt.Sprintf("%s: %s's promises apply", why, name))
	}

	// Servers: the quorum decides which promise a server loss makes.
	servers := r.NodesWithRole(topology.RoleServer)
	var gone []string
	for _, n := range servers {
		if has(n.Name, topology.RoleServer) {
			gone = append(gone, n.Name)
		}
	}
	if len(gone) > 0 {
		quorum := topology.Quorum(len(servers))
		left := len(servers) - len(gone)
		kind, why := oneServer, fmt.Sprintf("%d of %d servers lost: %d etcd members keep the quorum of %d", len(gone), len(servers), left, quorum)
		if left < quorum {
			kind, why = quorumLost, fmt.Sprintf("%d of %d servers lost: %d etcd member(s) left, below the quorum of %d", len(gone), len(servers), left, quorum)
		}
		if doc.Fault == oneServer || doc.Fault == quorumLost {
			if kind != doc.Fault {
				if row := m.Row(kind); row != nil {
					base = *row
					o.reasons = append(o.reasons, fmt.Sprintf("%s: %s's promises apply", why, kind))
				}
			}
		} else {
			add(kind, fmt.Sprintf("%s also holds role server; %s", strings.Join(gone, ", "), why))
		}
	}

	// The API's load balancing: the VIP moves, or it is gone.
	cp := r.Spec.ControlPlane
	vip := vipNone
	if ka := cp.Keepalived; ka != nil {
		all := !slices.ContainsFunc(ka.Members, func(mb topology.KeepalivedMember) bool { return !has(mb.Node, topology.RoleLoadBalancer) })
		switch {
		case all:
			vip = vipGone
			add(apiLBGone, fmt.Sprintf("every keepalived member (%s) is lost, and the VIP %s with them", memberList(ka), cp.Endpoint.Host))
		case has(ka.Master(), topology.RoleLoadBalancer):
			vip = vipMoved
			add(vipMoves, fmt.Sprintf("%s is keepalived's MASTER: the VIP %s moves to a BACKUP", ka.Master(), cp.Endpoint.Host))
		}
	}
	if hp := cp.HAProxy; hp != nil && vip != vipGone && len(hp.Nodes) > 0 &&
		!slices.ContainsFunc(hp.Nodes, func(n string) bool { return !has(n, topology.RoleLoadBalancer) }) {
		add(apiLBGone, fmt.Sprintf("every HAProxy (%s) is lost", strings.Join(hp.Nodes, ", ")))
	}

	for _, name := range choice {
		n := r.Node(name)
		if n == nil {
			continue
		}
		if has(name, topology.RoleNAS) {
			add(nasGone, fmt.Sprintf("%s is the NFS server", name))
		}
		if has(name, topology.RoleVPS) {
			add(vpsGone, fmt.Sprintf("%s is the tunnel's VPS", name))
		}
		switch {
		case !r.RunsApps(n):
			if has(name, topology.RoleWorker) {
				o.reasons = append(o.reasons, fmt.Sprintf("%s is a worker tainted %s: the apps do not run there, so none go with it", name, taintList(n.Taints)))
			}
		case has(name, topology.RoleWorker):
			add(workerGone, fmt.Sprintf("%s is also a worker: its pods go with it", name))
		case has(name, topology.RoleServer):
			add(workerGone, fmt.Sprintf("%s is a K3s server with no NoSchedule taint, so it runs workloads: its pods go with it", name))
		}
	}

	row := copyRow(doc)
	for p := range row.Cells {
		row.Cells[p] = base.Cells[p]
	}
	row.Settle, row.Observe, row.Recovery = longest(doc.Settle, base.Settle), longest(doc.Observe, base.Observe), longest(doc.Recovery, base.Recovery)
	for _, name := range parts {
		part := m.Row(name)
		for p, c := range part.Cells {
			row.Cells[p] = combine(row.Cells[p], c)
		}
		row.Settle, row.Observe, row.Recovery = longest(row.Settle, part.Settle), longest(row.Observe, part.Observe), longest(row.Recovery, part.Recovery)
	}
	row.Labels = slices.DeleteFunc(slices.Clone(doc.Labels), func(l string) bool { return l == labelQuorum })
	if base.Fault == quorumLost || slices.Contains(parts, quorumLost) {
		row.Labels = append(row.Labels, labelQuorum)
	}

	// An ingress on the API's VIP: the LAN (and the tunnel, which forwards
	// to it) follows the VIP.
	if in := r.Spec.Ingress; r.IngressOnVIP() && vip != vipNone {
		paths := []string{"lan"}
		if t := r.Spec.Tunnel; t != nil && (t.Target == "" || t.Target == in.IP) {
			paths = append(paths, "internet")
		}
		ref := m.Row(vipMoves)
		if vip == vipGone {
			ref = m.Row(apiLBGone)
		}
		if ref != nil {
			api := ref.Cells["api"]
			for _, p := range paths {
				c := row.Cells[p]
				if vip == vipGone {
					c = matrix.Cell{During: matrix.Down, Within: api.Within, Note: "the ingress IP is the VIP, which is gone"}
				} else {
					c = combine(c, api)
					c.Note = joinNote(c.Note, "the ingress IP is the VIP: it moves with it")
				}
				row.Cells[p] = c
			}
			what := "moves with the VIP"
			if vip == vipGone {
				what = "is gone with the VIP"
			}
			o.reasons = append(o.reasons, fmt.Sprintf("the ingress IP is the API's VIP %s: %s %s", in.IP, strings.Join(paths, " and "), what))
		}
	}
	// On K3s the cluster does not reach its API through the rack's load
	// balancer: agents keep their own client-side load balancer over every
	// server, servers' kubelets and controllers use their own API server, and
	// pods reach it through the kubernetes Service. Losing the load balancer
	// takes access from outside the cluster, not the cluster's healing.
	if r.Spec.Kubernetes.Distribution == topology.DistributionK3s && len(gone) == 0 &&
		(doc.Fault == apiLBGone || slices.Contains(parts, apiLBGone)) && row.Cells["heal"].During == matrix.Down {
		row.Cells["heal"] = m.Defaults.Cell(matrix.Cell{During: matrix.Up,
			Note: "K3s: agents reach the servers through their own client-side load balancer, pods through the kubernetes Service"}, row.Observe.Duration)
		o.reasons = append(o.reasons, "K3s agents reach the servers through their own client-side load balancer and pods reach the API through the kubernetes Service: the cluster keeps replacing lost pods without the API's load balancer (heal up; only access from outside the cluster goes)")
	}
	o.row = row
	return o
}

type vipState int

const (
	vipNone vipState = iota
	vipMoved
	vipGone
)

// combine is the promise of one path under two losses at once: down if
// either takes it down (within the sooner), up if both keep it up (the
// longer blip allowed); "any" promises nothing and yields to the other.
func combine(a, b matrix.Cell) matrix.Cell {
	switch {
	case a.During == matrix.Any || a.During == "":
		return b
	case b.During == matrix.Any:
		return a
	case a.During == matrix.Down && b.During == matrix.Down:
		out := a
		if b.Within.Duration < a.Within.Duration {
			out = b
		}
		out.Note = joinNote(a.Note, b.Note)
		return out
	case a.During == matrix.Down:
		return a
	case b.During == matrix.Down:
		return b
	}
	return matrix.Cell{During: matrix.Up, Within: longest(a.Within, b.Within), Downtime: longest(a.Downtime, b.Downtime), Note: joinNote(a.Note, b.Note)}
}

// agree is the promise that holds whichever of two choices the fault
// makes: the same expectation with the more lenient budget, or nothing.
func agree(a, b matrix.Row) matrix.Row {
	out := copyRow(a)
	for p, ca := range a.Cells {
		cb := b.Cells[p]
		c := ca
		switch {
		case ca.During != cb.During:
			c = matrix.Cell{During: matrix.Any, Note: joinNote(ca.Note, cb.Note)}
		case ca.During != matrix.Any:
			c.Within, c.Downtime, c.Note = longest(ca.Within, cb.Within), longest(ca.Downtime, cb.Downtime), joinNote(ca.Note, cb.Note)
		}
		out.Cells[p] = c
	}
	out.Settle, out.Observe, out.Recovery = longest(a.Settle, b.Settle), longest(a.Observe, b.Observe), longest(a.Recovery, b.Recovery)
	for _, l := range b.Labels {
		if !slices.Contains(out.Labels, l) {
			out.Labels = append(out.Labels, l)
		}
	}
	return out
}

// changes lists what differs between the documented row and the derived one.
func changes(doc, row matrix.Row) []Change {
	var out []Change
	for _, p := range matrix.Probes {
		d, g := Describe(doc.Cells[p]), Describe(row.Cells[p])
		if d != g {
			out = append(out, Change{Probe: p, Documented: d, Derived: g,
				Unkeepable: doc.Cells[p].During == matrix.Up && row.Cells[p].During != matrix.Up})
		}
	}
	for _, f := range []struct {
		what string
		a, b metav1.Duration
	}{{"settle", doc.Settle, row.Settle}, {"observe", doc.Observe, row.Observe}, {"recovery", doc.Recovery, row.Recovery}} {
		if f.a != f.b {
			out = append(out, Change{What: f.what, Documented: f.a.Duration.String(), Derived: f.b.Duration.String()})
		}
	}
	if a, b := strings.Join(doc.Labels, ","), strings.Join(row.Labels, ","); a != b {
		out = append(out, Change{What: "labels", Documented: a, Derived: b})
	}
	return out
}

// Describe says a cell's promise as the plan prints it.
func Describe(c matrix.Cell) string {
	switch c.During {
	case matrix.Up:
		return fmt.Sprintf("up(blip<=%s, failing<=%s)", c.Within.Duration, c.Downtime.Duration)
	case matrix.Down:
		return fmt.Sprintf("down(<=%s)", c.Within.Duration)
	}
	return "any"
}

// combinations are the ways to take count of names (every name when count
// is 0), in order.
func combinations(names []string, count int) [][]string {
	if count <= 0 || count >= len(names) {
		return [][]string{names}
	}
	var out [][]string
	var walk func(start int, acc []string)
	walk = func(start int, acc []string) {
		if len(acc) == count {
			out = append(out, slices.Clone(acc))
			return
		}
		for i := start; i < len(names); i++ {
			walk(i+1, append(acc, names[i]))
		}
	}
	walk(0, nil)
	return out
}

func copyRow(r matrix.Row) matrix.Row {
	out := r
	out.Labels = slices.Clone(r.Labels)
	out.Cells = make(map[string]matrix.Cell, len(r.Cells))
	for p, c := range r.Cells {
		out.Cells[p] = c
	}
	return out
}

func longest(a, b metav1.Duration) metav1.Duration {
	return metav1.Duration{Duration: time.Duration(max(a.Duration, b.Duration))}
}

func joinNote(a, b string) string {
	switch {
	case a == "" || a == b:
		return b
	case b == "" || strings.Contains(a, b):
		return a
	}
	return a + "; " + b
}

func roleList(roles []topology.Role) string {
	var s []string
	for _, r := range roles {
		s = append(s, string(r))
	}
	return strings.Join(s, ", ")
}

func memberList(k *topology.Keepalived) string {
	var s []string
	for _, m := range k.Members {
		s = append(s, m.Node)
	}
	return strings.Join(s, ", ")
}

func taintList(ts []topology.Taint) string {
	var out []string
	for _, t := range ts {
		if t.KeepsAppsOff() {
			out = append(out, t.String())
		}
	}
	return strings.Join(out, ", ")
}
