package rackstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/topology"
)

// VIPHolder returns the running node that has vip on one of its interfaces, or
// "" when none has.
func VIPHolder(ctx context.Context, nodes []cluster.Node, vip string) (string, error) {
	if vip == "" {
		return "", nil
	}
	holders := []string{}
	for _, n := range nodes {
		if !slices.Contains(n.Roles(), topology.RoleLoadBalancer) {
			continue
		}
		if up, err := n.Running(ctx); err != nil || !up {
			continue
		}
		out, err := exec.Output(n.Command(ctx, "ip", "-4", "-o", "addr", "show"))
		if err != nil {
			return "", fmt.Errorf("addresses of %s: %w", n.Name(), err)
		}
		if strings.Contains(string(out), " "+vip+"/") {
			holders = append(holders, n.Name())
		}
	}
	switch len(holders) {
	case 0:
		return "", nil
	case 1:
		return holders[0], nil
	}
	// Two holders is split brain: VRRP failed; say so rather than pick one.
	return strings.Join(holders, "+"), nil
}

// EtcdMember is one member of the stacked etcd as etcdctl reports it.
type EtcdMember struct {
	Endpoint string `json:"endpoint"`
	Node     string `json:"node"`
	Leader   bool   `json:"leader"`
	Version  string `json:"version"`
	RaftTerm uint64 `json:"raftTerm"`
	DBSize   int64  `json:"dbSize"`
}

// etcdctlScript runs etcdctl against the server's local etcd member with the
// certificates the distribution keeps there (kubeadm's health-check client,
// K3s's etcd client), through etcdctl on the host or, on a kubeadm host
// without it, the etcd pod's own.
const etcdctlScript = `kube=/etc/kubernetes/pki/etcd k3s=/var/lib/rancher/k3s/server/tls/etcd
if [ -f $kube/ca.crt ]; then set -- --cacert=$kube/ca.crt --cert=$kube/healthcheck-client.crt --key=$kube/healthcheck-client.key "$@"
elif [ -f $k3s/server-ca.crt ]; then set -- --cacert=$k3s/server-ca.crt --cert=$k3s/client.crt --key=$k3s/client.key "$@"
else echo "no etcd client certificates here (kubeadm: $kube, K3s: $k3s)" >&2; exit 1; fi
set -- --endpoints=https://127.0.0.1:2379 --command-timeout=5s "$@"
if command -v etcdctl >/dev/null; then exec etcdctl "$@"; fi
if [ -x ` + OwnEtcdctl + ` ]; then exec ` + OwnEtcdctl + ` "$@"; fi
if command -v crictl >/dev/null; then
  id=$(crictl ps -q --name '^etcd$' | head -n 1)
  if [ -n "$id" ]; then exec crictl exec "$id" etcdctl "$@"; fi
fi
echo "etcdctl is not installed on this server, and no etcd pod runs here (rackdrill probes install puts rackdrill's at ` + OwnEtcdctl + `)" >&2
exit 127`

// OwnEtcdctl is where rackdrill puts its etcdctl on a server that has none
// (K3s's servers: K3s ships no etcdctl).
const OwnEtcdctl = "/var/lib/rackdrill/etcdctl"

// PlaceEtcdctl copies an etcdctl built for each server's architecture (the
// topology's spec.nodes[].arch, checked against uname -m) to every running
// server of a K3s rack that has none, so that etcd's members and leader can be
// read there. build gives the path of etcdctl for an architecture. It returns
// the servers it wrote etcdctl on.
func PlaceEtcdctl(ctx context.Context, nodes []cluster.Node, r *topology.Rack, build func(arch string) (string, error)) ([]string, error) {
	var errs []error
	var written []string
	for _, n := range LackingEtcdctl(ctx, nodes) {
		declared := ""
		if tn := r.Node(n.Name()); tn != nil {
			declared = tn.Arch
		}
		arch, err := cluster.Arch(ctx, n, declared)
		if err != nil {
			errs = append(errs, fmt.Errorf("server %s has no etcdctl: %w", n.Name(), err))
			continue
		}
		local, err := build(arch)
		if err != nil {
			return written, fmt.Errorf("etcdctl for %s (%s): %w", n.Name(), arch, err)
		}
		f, err := os.Open(local)
		if err != nil {
			return written, err
		}
		err = exec.Run(n.Command(ctx, "sh", "-c", "mkdir -p "+path.Dir(OwnEtcdctl)+" && cat > "+OwnEtcdctl+".new && chmod 755 "+OwnEtcdctl+".new && mv "+OwnEtcdctl+".new "+OwnEtcdctl).SetStdin(f))
		f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("server %s: put etcdctl at %s: %w", n.Name(), OwnEtcdctl, err))
			continue
		}
		written = append(written, n.Name())
	}
	return written, errors.Join(errs...)
}

// LackingEtcdctl are the running servers among nodes that have no etcdctl
// (neither installed nor rackdrill's own).
func LackingEtcdctl(ctx context.Context, nodes []cluster.Node) []cluster.Node {
	var out []cluster.Node
	for _, n := range nodes {
		if !slices.Contains(n.Roles(), topology.RoleServer) {
			continue
		}
		if up, err := n.Running(ctx); err != nil || !up {
			continue
		}
		if exec.Run(n.Command(ctx, "sh", "-c", "command -v etcdctl >/dev/null || [ -x "+OwnEtcdctl+" ]")) == nil {
			continue
		}
		out = append(out, n)
	}
	return out
}

// Etcdctl is the command every server can run against its local etcd member:
// sh -c with the script above, args as etcdctl's.
func Etcdctl(args ...string) []string {
	return append([]string{"sh", "-c", etcdctlScript, "etcdctl"}, args...)
}

type endpointStatus struct {
	Endpoint string `json:"Endpoint"`
	Status   struct {
		Header struct {
			MemberID uint64 `json:"member_id"`
		} `json:"header"`
		Version  string `json:"version"`
		DBSize   int64  `json:"dbSize"`
		Leader   uint64 `json:"leader"`
		RaftTerm uint64 `json:"raftTerm"`
	} `json:"Status"`
}

// EtcdStatus asks the first running server for the status of every etcd member
// (`etcdctl endpoint status --cluster`); members are named by the node whose
// address their endpoint has. A member that does not answer is left out.
func EtcdStatus(ctx context.Context, nodes []cluster.Node) ([]EtcdMember, error) {
	var errs []string
	for _, n := range nodes {
		if !slices.Contains(n.Roles(), topology.RoleServer) {
			continue
		}
		if up, err := n.Running(ctx); err != nil || !up {
			continue
		}
		cmd := Etcdctl("endpoint", "status", "--cluster", "-w", "json")
		out, err := exec.Output(n.Command(ctx, cmd[0], cmd[1:]...))
		// With a member down, etcdctl fails but still prints the members
		// that answered: those are the status, the missing one is absent.
		var sts []endpointStatus
		if jerr := json.Unmarshal(out, &sts); jerr != nil || len(sts) == 0 {
			if err == nil {
				return nil, fmt.Errorf("etcdctl endpoint status on %s: %w", n.Name(), jerr)
			}
			errs = append(errs, fmt.Sprintf("%s: %v", n.Name(), err))
			continue
		}
		var members []EtcdMember
		for _, s := range sts {
			m := EtcdMember{Endpoint: s.Endpoint, Version: s.Status.Version, RaftTerm: s.Status.RaftTerm, DBSize: s.Status.DBSize,
				Leader: s.Status.Leader != 0 && s.Status.Leader == s.Status.Header.MemberID}
			if u, err := url.Parse(s.Endpoint); err == nil {
				host, _, _ := net.SplitHostPort(u.Host)
				for _, o := range nodes {
					if o.Addr().String() == host {
						m.Node = o.Name()
					}
				}
			}
			members = append(members, m)
		}
		return members, nil
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("etcd status: no server is running")
	}
	return nil, fmt.Errorf("etcd status: %s", strings.Join(errs, "; "))
}

// EtcdLeader returns the node holding the etcd leader.
func EtcdLeader(ctx context.Context, nodes []cluster.Node) (string, error) {
	members, err := EtcdStatus(ctx, nodes)
	if err != nil {
		return "", err
	}
	for _, m := range members {
		if m.Leader {
			if m.Node == "" {
				return "", fmt.Errorf("the etcd leader %s is on no node of the rack", m.Endpoint)
			}
			return m.Node, nil
		}
	}
	return "", fmt.Errorf("etcd has no leader (%d members answered)", len(members))
}
