package containers

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// After a restart, Docker may give a machine on two networks its storage
// network as eth0 and its admin network as eth1: keepalived, configured on
// eth0, then put the VIP on the storage network and never heard the other
// member, and both servers of the converged lab held the VIP. The script that
// runs before each keepalived start must point the instance at the interface
// holding the admin address. It runs here in a network namespace of its own,
// with the two interfaces in that swapped order (a root-only test: CI runs as
// root).
func TestKeepalivedFollowsTheAdminAddress(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI runs as root, and this test needs a network namespace")
		}
		t.Skip("needs root for a network namespace")
	}
	ns := "rackdrill-test-keepalived"
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v %s", strings.Join(args, " "), err, out)
		}
	}
	_ = exec.Command("ip", "netns", "del", ns).Run()
	run("ip", "netns", "add", ns)
	defer func() { _ = exec.Command("ip", "netns", "del", ns).Run() }()
	in := func(args ...string) { t.Helper(); run(append([]string{"ip", "netns", "exec", ns}, args...)...) }
	in("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
	in("ip", "link", "add", "eth1", "type", "veth", "peer", "name", "peer1")
	in("ip", "addr", "add", "172.29.50.11/24", "dev", "eth0") // the storage network
	in("ip", "addr", "add", "172.29.30.11/24", "dev", "eth1") // the admin network
	in("ip", "link", "set", "eth0", "up")
	in("ip", "link", "set", "eth1", "up")

	cfg, err := tmpl.Render("keepalived.conf.tmpl", map[string]any{"Node": "server-1", "Rack": "converged",
		"Master": true, "Interface": "eth0", "RouterID": 51, "Priority": 150, "Password": "x", "VIP": "172.29.30.10", "Bits": 24})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf, script := filepath.Join(dir, "keepalived.conf"), filepath.Join(dir, "script")
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, []byte(keepalivedInterfaceScript("172.29.30.11", conf)), 0o755); err != nil {
		t.Fatal(err)
	}
	in("sh", script)
	got, _ := os.ReadFile(conf)
	if !strings.Contains(string(got), "\n  interface eth1\n") || !strings.Contains(string(got), "172.29.30.10/24 dev eth1\n") {
		t.Errorf("keepalived.conf after the script:\n%s", got)
	}
	if strings.Contains(string(got), "eth0") {
		t.Errorf("keepalived.conf still names eth0:\n%s", got)
	}
}
