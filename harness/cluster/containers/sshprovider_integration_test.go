package containers_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"rackdrill.dev/rackdrill/harness/cluster"
	sshprovider "rackdrill.dev/rackdrill/harness/cluster/ssh"
	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/rackstate"
	"rackdrill.dev/rackdrill/harness/topology"
)

// asServer plays a machine as a server.
type asServer struct{ cluster.Node }

func (asServer) Roles() []topology.Role { return []topology.Role{topology.RoleServer} }

// sshProviderOnLab adopts the smoke lab as a real rack: its machines' sshd,
// the rack's key and known_hosts that up wrote. It checks what users rely on
// before anything touches their machines: commands run and quote as written,
// the kubeconfig is read from a server, and a wrong host key, an unknown
// host, an unreachable host, a bad key file and a missing sudo each stop with
// an error naming the host (or file).
func sshProviderOnLab(ctx context.Context, t *testing.T, r *topology.Rack, artifacts string) {
	dir := filepath.Join(artifacts, "ssh")
	asRack := func(edit func(*topology.Rack)) *topology.Rack {
		c := *r
		c.Spec.Provider = topology.ProviderSSH
		c.Spec.Nodes = slices.Clone(r.Spec.Nodes)
		c.Spec.SSH = &topology.SSH{User: "root", Port: 22, IdentityFile: filepath.Join(dir, "id_ed25519"), KnownHosts: filepath.Join(dir, "known_hosts")}
		if edit != nil {
			edit(&c)
		}
		return &c
	}
	opts := []sshprovider.Option{sshprovider.WithDialTimeout(3 * time.Second)}

	t.Run("adopt the lab over SSH", func(t *testing.T) {
		p, err := sshprovider.NewProvider(asRack(nil), opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if err := p.Check(ctx); err != nil {
			t.Fatal(err)
		}
		nodes, _ := p.Nodes(ctx)
		for _, n := range nodes {
			out, err := exec.Output(n.Command(ctx, "hostname"))
			if err != nil || strings.TrimSpace(string(out)) != n.Name() {
				t.Errorf("hostname over SSH on %s: %q, %v", n.Name(), out, err)
			}
		}
		odd := `a b'c "$HOME" ;|&`
		out, err := exec.Output(nodes[0].Command(ctx, "printf", "%s", odd))
		if err != nil || string(out) != odd {
			t.Errorf("printf %q over SSH printed %q (%v): words must reach the machine as written", odd, out, err)
		}
		if err := nodes[0].Command(ctx, "false").Run(); err == nil || !strings.Contains(err.Error(), "exit status 1") {
			t.Errorf("false over SSH: %v", err)
		}
		kc, err := p.Kubeconfig(ctx)
		if err != nil || !strings.Contains(string(kc), "server: https://") {
			t.Errorf("kubeconfig over SSH: %v", err)
		}
	})

	t.Run("rackdrill's etcdctl is put on a server that has none (K3s)", func(t *testing.T) {
		// lb-1, played as a server of a K3s rack, has its etcdctl moved
		// away (the lab's machines share one image, which has it): it gets
		// rackdrill's over SSH, which then runs there; server-1, which has
		// one, is left alone.
		root, err := lab.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		b, err := lab.NewBuilder(root, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var built []string
		local := func(arch string) (string, error) { built = append(built, arch); return b.EtcdctlFor(ctx, arch) }
		p, err := sshprovider.NewProvider(asRack(nil), opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		nodes, _ := p.Nodes(ctx)
		lb1, _ := cluster.ByName(nodes, "lb-1")
		s1, _ := cluster.ByName(nodes, "server-1")
		hide := "p=$(command -v etcdctl) && mv \"$p\" \"$p.rackdrill-test\" && echo \"$p\""
		hidden, err := exec.Output(lb1[0].Command(ctx, "sh", "-c", hide))
		if err != nil {
			t.Fatalf("move lb-1's etcdctl away: %v", err)
		}
		defer func() {
			at := strings.TrimSpace(string(hidden))
			_ = lb1[0].Command(ctx, "mv", at+".rackdrill-test", at).Run()
		}()
		k3s := asRack(func(c *topology.Rack) { c.Spec.Kubernetes.Distribution = topology.DistributionK3s })
		written, err := rackstate.PlaceEtcdctl(ctx, []cluster.Node{asServer{lb1[0]}, s1[0]}, k3s, local)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(written, []string{lb1[0].Name()}) {
			t.Errorf("etcdctl written on %v, want lb-1 only", written)
		}
		if !slices.Equal(built, []string{runtime.GOARCH}) {
			t.Errorf("etcdctl built for %v, want lb-1's architecture only", built)
		}
		out, err := exec.Output(lb1[0].Command(ctx, rackstate.OwnEtcdctl, "version"))
		if err != nil || !strings.Contains(string(out), "etcdctl version") {
			t.Fatalf("rackdrill's etcdctl on lb-1: %q %v", out, err)
		}
		if err := s1[0].Command(ctx, "test", "!", "-e", rackstate.OwnEtcdctl).Run(); err != nil {
			t.Errorf("server-1 has etcdctl: nothing should have been put there")
		}
		// The script finds it, and says what lb-1 lacks: etcd's certificates.
		cmd := rackstate.Etcdctl("version")
		var stderr strings.Builder
		err = lb1[0].Command(ctx, cmd[0], cmd[1:]...).SetStderr(&stderr).Run()
		if err == nil || !strings.Contains(stderr.String(), "no etcd client certificates here") {
			t.Errorf("etcdctl script on lb-1: %v %q", err, stderr.String())
		}
		_ = lb1[0].Command(ctx, "rm", "-rf", "/var/lib/rackdrill").Run()
	})

	t.Run("a wrong host key is refused, naming the host and both fingerprints", func(t *testing.T) {
		kh := filepath.Join(t.TempDir(), "known_hosts")
		lines, _ := os.ReadFile(filepath.Join(dir, "known_hosts"))
		ls := strings.Split(strings.TrimSpace(string(lines)), "\n")
		// server-1's line carries server-2's key.
		var s1, s2 int
		for i, l := range ls {
			switch {
			case strings.Contains(l, "server-1"):
				s1 = i
			case strings.Contains(l, "server-2"):
				s2 = i
			}
		}
		f1, f2 := strings.Fields(ls[s1]), strings.Fields(ls[s2])
		ls[s1] = strings.Join([]string{f1[0], f2[1], f2[2]}, " ")
		if err := os.WriteFile(kh, []byte(strings.Join(ls, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		p, err := sshprovider.NewProvider(asRack(func(c *topology.Rack) { c.Spec.SSH.KnownHosts = kh }), opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		err = p.Check(ctx)
		var he *sshprovider.HostKeyError
		if !errors.As(err, &he) || he.Node != "server-1" || len(he.Known) != 1 || he.Offered == he.Known[0] ||
			!strings.Contains(err.Error(), "SHA256:") {
			t.Fatalf("want a host key error for server-1 with both fingerprints, got %v", err)
		}
		t.Logf("refused as expected: %v", he)
	})

	t.Run("an unknown host is refused, and recorded only when asked", func(t *testing.T) {
		kh := filepath.Join(t.TempDir(), "known_hosts")
		lines, _ := os.ReadFile(filepath.Join(dir, "known_hosts"))
		var kept []string
		for _, l := range strings.Split(strings.TrimSpace(string(lines)), "\n") {
			if !strings.Contains(l, "worker-2") {
				kept = append(kept, l)
			}
		}
		if err := os.WriteFile(kh, []byte(strings.Join(kept, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		rack := asRack(func(c *topology.Rack) { c.Spec.SSH.KnownHosts = kh })
		p, _ := sshprovider.NewProvider(rack, opts...)
		err := p.Check(ctx)
		p.Close()
		if err == nil || !strings.Contains(err.Error(), "host worker-2 (") || !strings.Contains(err.Error(), "is not in "+kh) {
			t.Fatalf("want worker-2 refused as unknown, got %v", err)
		}
		p, _ = sshprovider.NewProvider(rack, append(opts, sshprovider.WithAcceptNewHostKeys(true))...)
		defer p.Close()
		if err := p.Check(ctx); err != nil {
			t.Fatalf("with --accept-new-host-keys: %v", err)
		}
		after, _ := os.ReadFile(kh)
		if strings.Count(string(after), "\n") != len(kept)+1 {
			t.Errorf("known_hosts should have gained worker-2's line:\n%s", after)
		}
	})

	t.Run("an unreachable host, a bad key file, a missing sudo", func(t *testing.T) {
		unused := strings.TrimSuffix(r.Spec.Nodes[0].Address, ".11") + ".99"
		p, _ := sshprovider.NewProvider(asRack(func(c *topology.Rack) { c.Spec.Nodes[5].Address = unused }), opts...)
		err := p.Check(ctx)
		p.Close()
		var ue *sshprovider.UnreachableError
		if !errors.As(err, &ue) || ue.Node != "worker-1" || !strings.Contains(err.Error(), unused) {
			t.Errorf("want worker-1 at %s unreachable, got %v", unused, err)
		}
		bad := filepath.Join(t.TempDir(), "id_bad")
		_ = os.WriteFile(bad, []byte("not a key"), 0o600)
		if _, err := sshprovider.NewProvider(asRack(func(c *topology.Rack) { c.Spec.SSH.IdentityFile = bad }), opts...); err == nil ||
			!strings.Contains(err.Error(), "identity file "+bad) {
			t.Errorf("want the bad key file named, got %v", err)
		}
		// The lab's machines have no sudo: an inventory that asks for it is
		// refused on every machine, each named.
		p, _ = sshprovider.NewProvider(asRack(func(c *topology.Rack) { c.Spec.SSH.Sudo = true }), opts...)
		defer p.Close()
		err = p.Check(ctx)
		if err == nil || !strings.Contains(err.Error(), "node server-1: sudo as root without a password fails") {
			t.Errorf("want sudo refused naming the node, got %v", err)
		}
		// No power switch over SSH: a machine is never killed by the provider.
		nodes, _ := p.Nodes(ctx)
		if err := nodes[0].Kill(ctx); !errors.Is(err, cluster.ErrUnsupported) {
			t.Errorf("Kill over SSH: %v, want ErrUnsupported", err)
		}
	})
}
