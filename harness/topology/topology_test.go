package topology_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"rackdrill.dev/rackdrill/harness/topology"
)

// wants reads the "# want:" (or "# want-warning:") lines of a testdata file: the
// messages loading it must produce.
func wants(t *testing.T, path, prefix string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			out = append(out, strings.TrimSpace(rest))
		}
	}
	return out
}

func TestValidFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid-*.yaml")
	shipped, _ := filepath.Glob("../../kind-configs/*.yaml")
	files = append(files, shipped...)
	if len(files) < 7 {
		t.Fatalf("found only %d valid files", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, warns, err := topology.Load(f)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			var got []string
			for _, w := range warns {
				got = append(got, w.String())
			}
			want := wants(t, f, "# want-warning:")
			if len(got) != len(want) {
				t.Fatalf("warnings %q, want %d matching %q", got, len(want), want)
			}
			for i := range want {
				if !strings.Contains(got[i], want[i]) {
					t.Errorf("warning %q does not contain %q", got[i], want[i])
				}
			}
			// Defaults are applied and stable: a second pass changes nothing.
			if r.Spec.ControlPlane.Endpoint.Port == 0 || r.Spec.Probes.Interval.Duration == 0 {
				t.Errorf("defaults not applied: %+v", r.Spec.ControlPlane.Endpoint)
			}
		})
	}
}

func TestInvalidFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid-*.yaml")
	if len(files) < 10 {
		t.Fatalf("found only %d invalid files", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want := wants(t, f, "# want:")
			if len(want) == 0 {
				t.Fatalf("%s has no '# want:' line", f)
			}
			_, _, err := topology.Load(f)
			if err == nil {
				t.Fatal("Load accepted an invalid file")
			}
			msg := err.Error()
			for _, w := range want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain %q:\n%s", w, msg)
				}
			}
			// Every line names the file.
			for _, line := range strings.Split(msg, "\n") {
				if !strings.HasPrefix(line, f+": ") {
					t.Errorf("error line does not start with the file name: %q", line)
				}
			}
		})
	}
}

func TestLabDefaults(t *testing.T) {
	r, _, err := topology.Load("../../kind-configs/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Spec.ControlPlane.Keepalived.Master(); got != "lb-1" {
		t.Errorf("keepalived MASTER = %s, want lb-1", got)
	}
	hp := r.Spec.ControlPlane.HAProxy
	if strings.Join(hp.Nodes, ",") != "lb-1,lb-2" || strings.Join(hp.Backends, ",") != "server-1,server-2,server-3" {
		t.Errorf("haproxy defaults: nodes %v backends %v", hp.Nodes, hp.Backends)
	}
	if r.Node("vps-1").Network != "internet" || r.Node("server-1").Network != "lan" {
		t.Errorf("node networks: vps-1 %q, server-1 %q", r.Node("vps-1").Network, r.Node("server-1").Network)
	}
	if r.Spec.Tunnel.Target != "172.29.10.240" || r.Spec.Tunnel.Server.PublicAddress != "172.29.20.10" {
		t.Errorf("tunnel defaults: target %q public %q", r.Spec.Tunnel.Target, r.Spec.Tunnel.Server.PublicAddress)
	}
	if got := r.APIServerURL(); got != "https://172.29.10.100:6443" {
		t.Errorf("APIServerURL = %s", got)
	}
	if n := len(r.NodesWithRole(topology.RoleServer)); n != 3 {
		t.Errorf("%d servers", n)
	}
}

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		in, first, last, err string
	}{
		{in: "10.0.0.240-10.0.0.250", first: "10.0.0.240", last: "10.0.0.250"},
		{in: "10.0.0.240 - 10.0.0.250", first: "10.0.0.240", last: "10.0.0.250"},
		{in: "10.0.0.240/28", first: "10.0.0.240", last: "10.0.0.255"},
		{in: "10.0.0.0/22", first: "10.0.0.0", last: "10.0.3.255"},
		{in: "fd00::10-fd00::20", first: "fd00::10", last: "fd00::20"},
		{in: "10.0.0.250-10.0.0.240", err: "is before"},
		{in: "10.0.0.1-fd00::1", err: "mixes"},
		{in: "nonsense", err: "neither"},
	} {
		g, err := topology.ParseRange(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseRange(%q) err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || g.First.String() != tc.first || g.Last.String() != tc.last {
			t.Errorf("ParseRange(%q) = %v, %v; want %s-%s", tc.in, g, err, tc.first, tc.last)
		}
	}
}

// FuzzParse: no input makes the decoder or the validator panic, and whatever is
// accepted is accepted again unchanged after its defaults (idempotence).
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	shipped, _ := filepath.Glob("../../kind-configs/*.yaml")
	for _, p := range append(files, shipped...) {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, _, err := topology.Parse(data, "fuzz.yaml")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		before := *r
		topology.SetDefaults(r)
		if errs, _ := topology.Validate(r); len(errs) > 0 {
			t.Fatalf("accepted rack fails validation after a second defaulting: %v", errs)
		}
		if before.Spec.Provider != r.Spec.Provider || before.Spec.Kubernetes != r.Spec.Kubernetes {
			t.Fatal("SetDefaults is not idempotent")
		}
	})
}

// A node written with a merge key inherits what it does not override, and a
// K3s release with no distribution is a K3s rack, not a kubeadm plan.
func TestMergeKeysAndInferredDistribution(t *testing.T) {
	r, _, err := topology.Load("testdata/valid-merge-keys.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s2 := r.Node("s2")
	if s2 == nil || s2.Address != "10.1.0.22" || s2.Arch != "arm64" || !s2.HasRole(topology.RoleServer) {
		t.Errorf("s2 after the merge: %+v", s2)
	}
	if d := r.Spec.Kubernetes.Distribution; d != topology.DistributionK3s {
		t.Errorf("distribution %q for version %s, want k3s", d, r.Spec.Kubernetes.Version)
	}
}

// An alias bomb: a 9 KB topology whose tlsSANs repeat, 1,500 times, an alias
// of nested lists (a billion strings, were they expanded). It is refused
// without expanding them, and the error prints a bounded number of lines,
// the first problems first, with how many more there are.
func TestAliasBombIsRefusedBriefly(t *testing.T) {
	lab, err := os.ReadFile("../../kind-configs/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var bomb strings.Builder
	bomb.WriteString("x-anchors:\n  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&bomb, "  a%d: &a%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d,", i-1), 10), ","))
	}
	s := strings.Replace(string(lab), "spec:\n", bomb.String()+"spec:\n", 1)
	s = strings.Replace(s, "tlsSANs: [api.lab.rackdrill.local]", "tlsSANs: ["+strings.TrimSuffix(strings.Repeat("*a8,", 1500), ",")+"]", 1)
	if len(s) > 10_000 {
		t.Fatalf("the bomb is %d bytes, want a file under 10 KB", len(s))
	}
	path := filepath.Join(t.TempDir(), "bomb.yaml")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = topology.Load(path)
	var fe *topology.FileError
	if !errors.As(err, &fe) {
		t.Fatalf("the alias bomb: %v", err)
	}
	msg := err.Error()
	if lines := strings.Count(msg, "\n") + 1; lines > 30 || len(fe.Errors) < 1500 ||
		!strings.Contains(msg, fmt.Sprintf("and %d more problems", len(fe.Errors)-25)) ||
		!strings.Contains(msg, "spec.controlPlane.tlsSANs[0]: Invalid value: must be a string, not a list") {
		t.Errorf("%d problems, printed in %d lines:\n%s", len(fe.Errors), lines, msg)
	}
}

// Seed 000's NAS serves NFS on the storage VLAN: with no
// spec.storage.nfs.network, the clients reach it there, not on the admin
// network; a rack with one network reaches it on its own address.
func TestNFSReachedOnTheStorageNetwork(t *testing.T) {
	for file, want := range map[string][2]string{
		"testdata/valid-seed000.yaml":        {"storage", "192.168.3.3"},
		"../../kind-configs/lab.yaml":        {"lan", "172.29.10.41"},
		"testdata/valid-nfs-on-storage.yaml": {"storage", "10.3.0.3"},
	} {
		r, _, err := topology.Load(file)
		if err != nil {
			t.Fatal(err)
		}
		if got := [2]string{r.Spec.Storage.NFS.Network, r.NFSAddress()}; got != want {
			t.Errorf("%s: NFS reached on %v, want %v", file, got, want)
		}
	}
}

// A Pi's arch may be written as uname says it (issue 36: aarch64 was refused
// without a hint): uname's and Debian's names are taken and rewritten to
// Kubernetes', which the kubelet reports and the images are built for.
func TestArchNames(t *testing.T) {
	for written, want := range map[string]string{"aarch64": "arm64", "armv7l": "arm", "armhf": "arm", "x86_64": "amd64", "arm": "arm"} {
		doc := `apiVersion: rackdrill.dev/v1alpha1
kind: Rack
metadata: {name: pis}
spec:
  provider: ssh
  networks: [{name: lan, cidr: 10.1.0.0/24, purpose: admin}]
  nodes:
    - {name: solo, roles: [server], address: 10.1.0.5}
    - {name: pi-1, roles: [worker], address: 10.1.0.6, arch: "` + written + `"}
  controlPlane: {endpoint: {host: 10.1.0.5}}
`
		r, _, err := topology.Parse([]byte(doc), "pis.yaml")
		if err != nil {
			t.Errorf("arch %q: %v", written, err)
			continue
		}
		if got := r.Node("pi-1").Arch; got != want {
			t.Errorf("arch %q became %q, want %q", written, got, want)
		}
	}
}
