package main

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"rackdrill.dev/rackdrill/harness/fault"
)

// openPTY opens a pseudo-terminal pair: what a user's shell gives rackdrill.
func openPTY(t *testing.T) *os.File {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slave.Close() })
	return slave
}

// Output is coloured on a terminal only, and never with NO_COLOR or
// TERM=dumb: a log file or CI's keeps no escape codes.
func TestColorOnlyOnATerminal(t *testing.T) {
	tty := openPTY(t)
	t.Setenv("NO_COLOR", "")
	t.Setenv("TERM", "xterm")
	if !colorful(tty) {
		t.Error("a terminal is not coloured")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if colorful(w) {
		t.Error("a pipe is coloured")
	}
	t.Setenv("NO_COLOR", "1")
	if colorful(tty) {
		t.Error("NO_COLOR is not honoured")
	}
	t.Setenv("NO_COLOR", "")
	t.Setenv("TERM", "dumb")
	if colorful(tty) {
		t.Error("TERM=dumb is coloured")
	}
}

// The shell completes --scenario with the matrix's rows and --provider with
// the providers (cobra's __complete is what the completion scripts call).
func TestCompletion(t *testing.T) {
	out, errOut, code := rackdrill(t, "__complete", "run", "--scenario", "")
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(l, ":") {
			got = append(got, l)
		}
	}
	if code != 0 || !slices.Equal(got, fault.Names) {
		t.Errorf("run --scenario completes %v, want the rows %v (exit %d)\n%s", got, fault.Names, code, errOut)
	}
	out, _, _ = rackdrill(t, "__complete", "plan", "--provider", "")
	if !strings.HasPrefix(out, "containers\nk3d\nssh\n") {
		t.Errorf("plan --provider completes:\n%s", out)
	}
	out, _, _ = rackdrill(t, "__complete", "status", "--topology", "")
	if !strings.HasPrefix(out, "yaml\nyml\n") {
		t.Errorf("--topology completes:\n%s", out)
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		if out, _, code := rackdrill(t, "completion", shell); code != 0 || !strings.Contains(out, "rackdrill") {
			t.Errorf("completion %s: exit %d", shell, code)
		}
	}
}

// --kubeconfig replaces the servers' admin kubeconfig; $KUBECONFIG is read
// only when no server gives one, so that one exported for another cluster
// changes nothing.
func TestKubeconfigRule(t *testing.T) {
	t.Setenv("KUBECONFIG", "/home/me/.kube/work-cluster")
	g := &globalOptions{}
	if p, fallback := g.kubeconfigFiles(); p != "/home/me/.kube/work-cluster" || !fallback {
		t.Errorf("$KUBECONFIG: %q, fallback %v", p, fallback)
	}
	g.kubeconfig = "rack.kubeconfig"
	if p, fallback := g.kubeconfigFiles(); p != "rack.kubeconfig" || fallback {
		t.Errorf("--kubeconfig: %q, fallback %v", p, fallback)
	}
}
