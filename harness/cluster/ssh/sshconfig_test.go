package ssh

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"rackdrill.dev/rackdrill/harness/topology"
)

func sshRack(t *testing.T, sshBlock string) *topology.Rack {
	t.Helper()
	doc := `apiVersion: rackdrill.dev/v1alpha1
kind: Rack
metadata: {name: home}
spec:
  provider: ssh
  kubernetes: {distribution: k3s, version: v1.33.5+k3s1}
  networks: [{name: lan, cidr: 127.77.0.0/24, purpose: admin}]
  nodes:
    - {name: tartaro, roles: [server], address: 127.77.0.10}
    - {name: styx, roles: [server], address: 127.77.0.11` + sshBlock + `}
  controlPlane: {endpoint: {host: 127.77.0.10}}
  ssh: {knownHosts: known_hosts}
`
	r, _, err := topology.Parse([]byte(doc), "home.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func keyFile(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	return p
}

// What the topology leaves out comes from the user's ~/.ssh/config, as `ssh
// tartaro` would use it: HostName, User, Port, the first IdentityFile that
// exists, and one ProxyJump hop (itself a Host of the file). What the
// topology says wins.
func TestUserSSHConfig(t *testing.T) {
	dir := t.TempDir()
	key, jumpKey := keyFile(t, dir, "rack_ed25519"), keyFile(t, dir, "jump_ed25519")
	conf := filepath.Join(dir, "config")
	if err := os.WriteFile(conf, []byte(`Host tartaro styx
  HostName %h.home.arpa
  User alice
  Port 2222
  IdentityFile `+filepath.Join(dir, "missing")+`
  IdentityFile `+key+`
  ProxyJump bastion

Host bastion
  HostName 127.77.0.2
  User jumper
  Port 2200
  IdentityFile `+jumpKey+`
`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := sshRack(t, `, ssh: {user: bob}`)
	p, err := NewProvider(r, WithSSHConfig(conf))
	if err != nil {
		t.Fatal(err)
	}
	a := p.accesses["tartaro"]
	if a.dialHost() != "tartaro.home.arpa" || a.addr != "127.77.0.10" || a.user != "alice" || a.port != 2222 || a.identity != key {
		t.Errorf("tartaro: dial %s (address %s), user %s, port %d, identity %s", a.dialHost(), a.addr, a.user, a.port, a.identity)
	}
	if j := a.jump; j == nil || j.dialHost() != "127.77.0.2" || j.user != "jumper" || j.port != 2200 || j.identity != jumpKey || j.hosts != a.hosts {
		t.Errorf("tartaro's jump host: %+v", a.jump)
	}
	if !slices.Equal(a.from, []string{"HostName", "User", "Port", "IdentityFile", "ProxyJump"}) {
		t.Errorf("tartaro's settings from the file: %v", a.from)
	}
	if s := p.accesses["styx"]; s.user != "bob" {
		t.Errorf("styx: user %s, want the topology's bob", s.user)
	}

	// No file: the topology alone (and a machine with no credentials at
	// all is refused, naming it).
	if _, err := NewProvider(r, WithSSHConfig(filepath.Join(dir, "none"))); err == nil || !strings.Contains(err.Error(), "node tartaro: no SSH credentials") {
		t.Errorf("without the file: %v", err)
	}
	// A chain of jump hosts is refused, naming the file and host.
	if err := os.WriteFile(conf, []byte("Host tartaro\n  IdentityFile "+key+"\n  ProxyJump a,b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewProvider(r, WithSSHConfig(conf)); err == nil || !strings.Contains(err.Error(), conf+`: Host tartaro: ProxyJump "a,b": rackdrill follows one jump host`) {
		t.Errorf("a jump chain: %v", err)
	}
}

// A kubeconfig given by the user: --kubeconfig is read instead of the
// servers' (merged from a KUBECONFIG-style list, its current context only);
// $KUBECONFIG only when no server gives the admin kubeconfig.
func TestKubeconfigFromFiles(t *testing.T) {
	dir := t.TempDir()
	key := keyFile(t, dir, "key")
	write := func(name, doc string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rack := write("rack.conf", `apiVersion: v1
kind: Config
clusters: [{name: home, cluster: {server: "https://192.0.2.10:6443"}}]
users: [{name: admin, user: {token: rack-token}}]
contexts: [{name: home, context: {cluster: home, user: admin}}]
current-context: home
`)
	other := write("other.conf", `apiVersion: v1
kind: Config
clusters: [{name: work, cluster: {server: "https://198.51.100.1:6443"}}]
users: [{name: me, user: {token: work-token}}]
contexts: [{name: work, context: {cluster: work, user: me}}]
`)
	// The rack's machines: nothing listens on their SSH port.
	r := sshRack(t, `, ssh: {identityFile: `+key+`, port: 1}`)
	r.Spec.SSH = &topology.SSH{IdentityFile: key, Port: 1, KnownHosts: filepath.Join(dir, "known_hosts")}
	for _, tc := range []struct {
		name     string
		list     string
		fallback bool
	}{
		{"--kubeconfig", rack + string(filepath.ListSeparator) + other, false},
		{"$KUBECONFIG, no server reachable", rack + string(filepath.ListSeparator) + other, true},
	} {
		p, err := NewProvider(r, WithSSHConfig(""), WithKubeconfig(tc.list, tc.fallback), WithDialTimeout(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		data, err := p.Kubeconfig(t.Context())
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if s := string(data); !strings.Contains(s, "rack-token") || strings.Contains(s, "work-token") || !strings.Contains(s, "https://192.0.2.10:6443") {
			t.Errorf("%s: the kubeconfig read is not the current context's alone:\n%s", tc.name, s)
		}
		p.Close()
	}
	p, err := NewProvider(r, WithSSHConfig(""), WithKubeconfig(other, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Kubeconfig(t.Context()); err == nil || !strings.Contains(err.Error(), "kubeconfig "+other+": no current context") {
		t.Errorf("a kubeconfig without a current context: %v", err)
	}
}
