package fault

import (
	"context"
	"strings"
	"testing"

	"rackdrill.dev/rackdrill/harness/topology"
)

// On a real rack, the faults made through the API get a dead-man timer on
// every server, whose script puts back exactly what the faults changed (the
// replicas and nodeSelector read when the fault was built) with the server's
// own kubectl, the last fault first. The lab and k3d get none: recover
// reverts them there.
func TestAPIFaultsAreGuardedOnARealRack(t *testing.T) {
	for _, tc := range []struct {
		topology, fault, kubectl string
		want                     []string
	}{
		{"../../kind-configs/lab-ssh.yaml", "metallb-dropped", "kubectl --kubeconfig /etc/kubernetes/admin.conf", []string{
			`( n=0; until kubectl --kubeconfig /etc/kubernetes/admin.conf -n metallb-system patch daemonset speaker --type=merge -p '{"spec":{"template":{"spec":{"nodeSelector":{"rackdrill.dev/fault":null}}}}}'; do n=$((n+1)); [ $n -lt 6 ] || exit 1; sleep 10; done ) || rc=1; ` +
				`( n=0; until kubectl --kubeconfig /etc/kubernetes/admin.conf -n metallb-system scale deployment controller --replicas=1; do`}},
		{"../../kind-configs/lab-k3s-ssh.yaml", "tunnel-client-cut", "k3s kubectl --kubeconfig /etc/rancher/k3s/k3s.yaml", []string{
			`k3s kubectl --kubeconfig /etc/rancher/k3s/k3s.yaml -n rackdrill-tunnel scale deployment tunnel-client --replicas=1`}},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			r, _, err := topology.Load(tc.topology)
			if err != nil {
				t.Fatal(err)
			}
			b := newTestBinder(t, r, &opsLog{})
			f, err := Build(context.Background(), tc.fault, b, r, topology.ProviderSSH)
			if err != nil {
				t.Fatal(err)
			}
			all, ok := f.(*All)
			if !ok {
				t.Fatalf("%s on a real rack is a %T, want the guard and the faults", tc.fault, f)
			}
			g, ok := all.parts[0].(*APIGuard)
			if !ok {
				t.Fatalf("the first part is a %T, want the APIGuard", all.parts[0])
			}
			servers := r.NodesWithRole(topology.RoleServer)
			if got := machines(g.remote.Cmds); len(got) != len(servers) {
				t.Errorf("timers on %v, want every server (%d)", got, len(servers))
			}
			script := DeadManScript(g.remote.Cmds, servers[0].Name)
			for _, w := range tc.want {
				if !strings.Contains(script, w) {
					t.Errorf("the timer's script lacks\n  %s\nit is\n  %s", w, script)
				}
			}
			if g.Kubectl != tc.kubectl {
				t.Errorf("kubectl %q, want %q", g.Kubectl, tc.kubectl)
			}
			for _, p := range []topology.ProviderName{topology.ProviderContainers, topology.ProviderK3d} {
				f, err := Build(context.Background(), tc.fault, b, r, p)
				if err != nil {
					t.Fatal(err)
				}
				if a, ok := f.(*All); ok {
					for _, part := range a.parts {
						if _, ok := part.(*APIGuard); ok {
							t.Errorf("%s: an APIGuard on provider %s", tc.fault, p)
						}
					}
				}
			}
		})
	}
}
