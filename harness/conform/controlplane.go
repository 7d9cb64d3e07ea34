package conform

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/rackstate"
	"rackdrill.dev/rackdrill/harness/topology"
)

// etcdDefaultQuota is etcd's backend quota when --quota-backend-bytes is not set.
const etcdDefaultQuota = 2 << 30

func controlPlaneChecks() []Check {
	servers := "spec.nodes[roles=server]"
	return []Check{{
		Name: "every documented control-plane node is a Ready server", Family: "control-plane", Field: servers,
		Run: func(ctx context.Context, t *Target) (string, error) {
			want := t.Rack.NodesWithRole(topology.RoleServer)
			var p problems
			// An even count is the rack's documented shape (seed 000's two
			// servers), not a departure from it: validate warns, and the
			// derived matrix promises the quorum's loss on one server's.
			even := ""
			if n := len(want); n%2 == 0 {
				even = fmt.Sprintf("; %d servers, an even count: etcd's quorum is %d, so it survives %d loss(es), as with %d (the plan's derived promises)",
					n, topology.Quorum(n), n-topology.Quorum(n), n-1)
			}
			nodes, err := t.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			if err != nil {
				return "", fmt.Errorf("list nodes: %w", err)
			}
			ready := 0
			for _, w := range want {
				i := slices.IndexFunc(nodes.Items, func(n corev1.Node) bool { return n.Name == w.Name })
				if i < 0 {
					p.add(nodeField(t.Rack, w.Name), "no Kubernetes node of that name")
					continue
				}
				n := &nodes.Items[i]
				if _, cp := n.Labels["node-role.kubernetes.io/control-plane"]; !cp && t.Rack.Spec.Kubernetes.Distribution == topology.DistributionKubeadm {
					p.add(nodeField(t.Rack, w.Name), "documented as a server, but the node lacks the label node-role.kubernetes.io/control-plane")
				}
				if st := condition(n, corev1.NodeReady); st != corev1.ConditionTrue {
					p.add(nodeField(t.Rack, w.Name), "documented as a server, but the node is not Ready (Ready=%s)", st)
					continue
				}
				ready++
			}
			return fmt.Sprintf("%d of %d servers Ready%s", ready, len(want), even), p.err()
		},
	}, {
		Name: "etcd has one started, healthy member per server, one leader, and its database under its quota", Family: "control-plane", Field: servers,
		Skip: func(t *Target) string {
			// K3s's servers run etcd inside the k3s process (--cluster-init),
			// read with K3s's etcd client certificates.
			if !t.Rack.RunsEtcd() {
				return "a single K3s server may keep its data in SQLite (no --cluster-init): there may be no etcd to check"
			}
			return ""
		},
		Run: checkEtcd,
	}}
}

func checkEtcd(ctx context.Context, t *Target) (string, error) {
	want := t.Rack.NodesWithRole(topology.RoleServer)
	members, err := rackstate.EtcdStatus(ctx, t.Nodes)
	if err != nil {
		return "", fieldError("spec.nodes[roles=server]", "etcd does not answer: %v", err)
	}
	var p problems
	leaders, quota := []string{}, int64(etcdDefaultQuota)
	if q, err := etcdQuota(ctx, t); err == nil && q > 0 {
		quota = q
	}
	seen := map[string]bool{}
	var largest int64
	for _, m := range members {
		if m.Node == "" {
			p.add("spec.nodes[roles=server]", "etcd member %s is on no server of the topology", m.Endpoint)
			continue
		}
		seen[m.Node] = true
		if m.Leader {
			leaders = append(leaders, m.Node)
		}
		largest = max(largest, m.DBSize)
		if m.DBSize >= quota*9/10 {
			p.add(nodeField(t.Rack, m.Node), "etcd database is %s, within 10%% of its quota of %s (compact and defragment)", bytes(m.DBSize), bytes(quota))
		}
	}
	for _, w := range want {
		if !seen[w.Name] {
			p.add(nodeField(t.Rack, w.Name), "documented as a server, but no started etcd member answers there")
		}
	}
	if len(members) != len(want) {
		p.add("spec.nodes[roles=server]", "documents %d servers, etcd has %d healthy members", len(want), len(members))
	}
	if len(leaders) != 1 {
		p.add("spec.nodes[roles=server]", "etcd must have one leader, found %d (%s)", len(leaders), strings.Join(leaders, ", "))
	}
	leader := ""
	if len(leaders) > 0 {
		leader = leaders[0]
	}
	return fmt.Sprintf("%s, leader %s, largest database %s of %s quota", plural(len(members), "member", "members"),
		leader, bytes(largest), bytes(quota)), p.err()
}

// etcdQuota reads --quota-backend-bytes from where the distribution sets
// etcd's flags: kubeadm's static pod manifest, K3s's config file (etcd-arg).
func etcdQuota(ctx context.Context, t *Target) (int64, error) {
	file := "/etc/kubernetes/manifests/etcd.yaml"
	if t.Rack.Spec.Kubernetes.Distribution == topology.DistributionK3s {
		file = "/etc/rancher/k3s/config.yaml"
	}
	for _, s := range t.Rack.NodesWithRole(topology.RoleServer) {
		n := t.node(s.Name)
		if n == nil {
			continue
		}
		out, err := exec.Output(n.Command(ctx, "cat", file))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(out), "\n") {
			if _, v, ok := strings.Cut(strings.TrimSpace(line), "quota-backend-bytes="); ok {
				return strconv.ParseInt(strings.Trim(v, `"' ],`), 10, 64)
			}
		}
		return 0, nil
	}
	return 0, fmt.Errorf("no server to read %s from", file)
}

func bytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

func condition(n *corev1.Node, c corev1.NodeConditionType) corev1.ConditionStatus {
	for _, x := range n.Status.Conditions {
		if x.Type == c {
			return x.Status
		}
	}
	return corev1.ConditionUnknown
}

func apiChecks() []Check {
	return []Check{{
		Name: "the API answers through the VIP", Family: "api", Field: "spec.controlPlane.endpoint",
		Run: func(ctx context.Context, t *Target) (string, error) {
			v, err := serverVersion(ctx, t.REST)
			if err != nil {
				return "", fieldError("spec.controlPlane.endpoint", "%s does not answer: %v", t.REST.Host, err)
			}
			return fmt.Sprintf("%s answers, Kubernetes %s", t.REST.Host, v), nil
		},
	}, {
		Name: "the API certificate is valid for the VIP and every documented TLS SAN", Family: "api", Field: "spec.controlPlane.tlsSANs",
		Run: func(ctx context.Context, t *Target) (string, error) {
			ep := t.Rack.Spec.ControlPlane.Endpoint
			leaf, err := servingCert(ctx, t.REST, net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)))
			if err != nil {
				return "", fieldError("spec.controlPlane.endpoint", "TLS handshake: %v", err)
			}
			var p problems
			if err := leaf.VerifyHostname(ep.Host); err != nil {
				p.add("spec.controlPlane.endpoint.host", "the API certificate is not valid for %s (its SANs: %s)", ep.Host, sans(leaf))
			}
			for i, s := range t.Rack.Spec.ControlPlane.TLSSANs {
				if err := leaf.VerifyHostname(s); err != nil {
					p.add(fmt.Sprintf("spec.controlPlane.tlsSANs[%d]", i), "the API certificate is not valid for %s (its SANs: %s); add it with --tls-san / apiServer.certSANs", s, sans(leaf))
				}
			}
			return "SANs: " + sans(leaf), p.err()
		},
	}, {
		Name: "every server's API answers directly on its own address", Family: "api", Field: "spec.nodes[roles=server].address",
		Run: func(ctx context.Context, t *Target) (string, error) {
			var p problems
			var ok []string
			for _, s := range t.Rack.NodesWithRole(topology.RoleServer) {
				cfg := rest.CopyConfig(t.REST)
				cfg.Host = "https://" + net.JoinHostPort(s.Address, strconv.Itoa(topology.DefaultAPIPort))
				if _, err := serverVersion(ctx, cfg); err != nil {
					p.add(nodeField(t.Rack, s.Name)+".address", "the API on %s does not answer: %v", cfg.Host, err)
					continue
				}
				ok = append(ok, s.Name)
			}
			return "answering: " + strings.Join(ok, ", "), p.err()
		},
	}}
}

func serverVersion(ctx context.Context, cfg *rest.Config) (string, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = 5 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil {
		return "", fmt.Errorf("/readyz: %w", err)
	}
	if strings.TrimSpace(string(body)) != "ok" {
		return "", fmt.Errorf("/readyz says %q", body)
	}
	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		return "", err
	}
	return v.GitVersion, nil
}

// servingCert is the certificate the API serves on addr, verified against the
// cluster's CA.
func servingCert(ctx context.Context, cfg *rest.Config, addr string) (*x509.Certificate, error) {
	pool := x509.NewCertPool()
	if len(cfg.CAData) > 0 && !pool.AppendCertsFromPEM(cfg.CAData) {
		return nil, fmt.Errorf("the kubeconfig's CA is not PEM")
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second},
		// The name is verified below, per SAN, with the chain checked here.
		Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}} //nolint:gosec // chain verified by hand below
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s sent no certificate", addr)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter}); err != nil {
		return nil, fmt.Errorf("certificate of %s: %w", addr, err)
	}
	return certs[0], nil
}

func sans(c *x509.Certificate) string {
	out := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return strings.Join(out, ", ")
}

func loadBalancerChecks() []Check {
	noHAProxy := func(t *Target) string {
		if t.Rack.Spec.ControlPlane.HAProxy == nil {
			return "the topology has no HAProxy (spec.controlPlane.haproxy)"
		}
		return ""
	}
	return []Check{{
		Name: "HAProxy lists every server as UP on every load balancer", Family: "load-balancer", Field: "spec.controlPlane.haproxy.backends",
		Skip: noHAProxy,
		Run: func(ctx context.Context, t *Target) (string, error) {
			hp := t.Rack.Spec.ControlPlane.HAProxy
			var p problems
			up := 0
			for _, lb := range hp.Nodes {
				n := t.Rack.Node(lb)
				rows, err := haproxyStats(ctx, net.JoinHostPort(n.Address, strconv.Itoa(hp.StatsPort)))
				if err != nil {
					p.add("spec.controlPlane.haproxy.statsPort", "stats of %s: %v", lb, err)
					continue
				}
				for i, b := range hp.Backends {
					s := t.Rack.Node(b)
					row := slices.IndexFunc(rows, func(r map[string]string) bool {
						if r["svname"] == "BACKEND" || r["svname"] == "FRONTEND" {
							return false
						}
						host, _, _ := net.SplitHostPort(r["addr"])
						return r["svname"] == b || (s != nil && host == s.Address)
					})
					field := fmt.Sprintf("spec.controlPlane.haproxy.backends[%d]", i)
					switch {
					case row < 0:
						p.add(field, "HAProxy on %s has no server %s", lb, b)
					case !strings.HasPrefix(rows[row]["status"], "UP"):
						p.add(field, "HAProxy on %s reports %s as %s (last check: %s)", lb, b, rows[row]["status"], rows[row]["check_status"])
					default:
						up++
					}
				}
			}
			return fmt.Sprintf("%d of %d backends UP across %s", up, len(hp.Backends)*len(hp.Nodes), plural(len(hp.Nodes), "load balancer", "load balancers")), p.err()
		},
	}, {
		Name: "exactly one keepalived node holds the VIP, and it is the configured MASTER", Family: "load-balancer", Field: "spec.controlPlane.keepalived.members",
		Skip: func(t *Target) string {
			if t.Rack.Spec.ControlPlane.Keepalived == nil {
				return "the topology has no keepalived (spec.controlPlane.keepalived)"
			}
			return ""
		},
		Run: func(ctx context.Context, t *Target) (string, error) {
			cp := t.Rack.Spec.ControlPlane
			holder, err := rackstate.VIPHolder(ctx, t.Nodes, cp.Endpoint.Host)
			if err != nil {
				return "", err
			}
			master := cp.Keepalived.Master()
			switch {
			case holder == "":
				return "", fieldError("spec.controlPlane.endpoint.host", "no load balancer holds the VIP %s", cp.Endpoint.Host)
			case strings.Contains(holder, "+"):
				return "VIP on " + holder, fieldError("spec.controlPlane.keepalived.members", "the VIP %s is on %s at once (split brain)", cp.Endpoint.Host, holder)
			case holder != master:
				return "VIP on " + holder, fieldError("spec.controlPlane.keepalived.members", "the VIP %s is on %s, but the configured MASTER (highest priority) is %s", cp.Endpoint.Host, holder, master)
			}
			return fmt.Sprintf("VIP %s on %s (MASTER)", cp.Endpoint.Host, holder), nil
		},
	}}
}

// haproxyStats reads HAProxy's stats page as CSV rows keyed by column.
func haproxyStats(ctx context.Context, addr string) ([]map[string]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/stats;csv", nil)
	if err != nil {
		return nil, err
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /stats;csv: %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(body), "# ")))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil || len(recs) == 0 {
		return nil, fmt.Errorf("stats are not CSV: %v", err)
	}
	var rows []map[string]string
	for _, rec := range recs[1:] {
		row := map[string]string{}
		for i, col := range recs[0] {
			if i < len(rec) {
				row[col] = rec[i]
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}
