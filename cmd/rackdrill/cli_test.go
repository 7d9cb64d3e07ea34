package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"rackdrill.dev/rackdrill/harness/fault"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// buildRackdrill builds the CLI under test once per test binary: the tests run
// it as a user does, exit codes and all.
func buildRackdrill(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rackdrill-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "rackdrill")
		out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = errors.New(err.Error() + "\n" + string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("build rackdrill: %v", buildErr)
	}
	return builtBin
}

// rackdrill runs the CLI from the repository root, where its defaults point.
func rackdrill(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return rackdrillIn(t, "../..", args...)
}

// rackdrillIn runs the CLI from dir.
func rackdrillIn(t *testing.T, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(buildRackdrill(t), args...)
	cmd.Dir = dir
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func TestValidateShippedTopologies(t *testing.T) {
	files, _ := filepath.Glob("../../kind-configs/*.yaml")
	var args []string
	for _, f := range files {
		args = append(args, strings.TrimPrefix(f, "../../"))
	}
	out, errOut, code := rackdrill(t, append([]string{"validate"}, args...)...)
	if code != 0 || strings.Count(out, ": ok (") != len(files) || len(files) != 10 {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

func TestValidateRejectsBadInput(t *testing.T) {
	files, _ := filepath.Glob("../../harness/topology/testdata/invalid-*.yaml")
	for _, f := range files {
		rel := strings.TrimPrefix(f, "../../")
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, errOut, code := rackdrill(t, "validate", rel)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			data, _ := os.ReadFile(f)
			for _, line := range strings.Split(string(data), "\n") {
				if w, ok := strings.CutPrefix(line, "# want: "); ok && !strings.Contains(errOut, rel+": "+w) {
					t.Errorf("stderr lacks %q:\n%s", rel+": "+w, errOut)
				}
			}
			if strings.Contains(errOut, "panic") || strings.Contains(errOut, "goroutine") {
				t.Errorf("crashed:\n%s", errOut)
			}
		})
	}
	_, errOut, code := rackdrill(t, "validate", "no/such/rack.yaml")
	if code != 2 || !strings.Contains(errOut, "no/such/rack.yaml") {
		t.Errorf("missing file: exit %d: %s", code, errOut)
	}
	// Every command that loads a topology refuses it the same way.
	_, errOut, code = rackdrill(t, "plan", "--topology", "harness/topology/testdata/invalid-vip-outside.yaml")
	if code != 2 || !strings.Contains(errOut, "the VIP is outside its network") {
		t.Errorf("plan with a bad topology: exit %d: %s", code, errOut)
	}
}

func TestPlanListsEveryRow(t *testing.T) {
	out, errOut, code := rackdrill(t, "plan", "--topology", "kind-configs/lab.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for i, want := range []string{"server-kill-1", "server-kill-2", "lb-master-lost", "cp-lb-lost", "metallb-dropped",
		"tunnel-client-cut", "tunnel-server-lost", "nfs-lost", "worker-lost", "ups-power-loss"} {
		if !strings.Contains(out, fmt.Sprintf("%2d. %s: ", i+1, want)) {
			t.Errorf("plan lacks row %d %s", i+1, want)
		}
	}
	if n := strings.Count(out, "    targets: "); n != 10 {
		t.Errorf("%d rows with targets, want 10", n)
	}
	if n := strings.Count(out, "api=") + strings.Count(out, "data="); n != 20 {
		t.Errorf("expected cells missing: %d api/data cells", n)
	}
	for _, want := range []string{"inject:  lb-1         docker kill", "inject:  nas-1        docker stop", "NUT dummy-ups"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q", want)
		}
	}

	js, _, code := rackdrill(t, "plan", "-o", "json")
	var plan struct {
		Kind, Rack, Provider string
		Rows                 []struct {
			Row  struct{ Fault string }
			Plan struct {
				Applicable bool
				Targets    []string
			}
		}
	}
	if err := json.Unmarshal([]byte(js), &plan); err != nil || code != 0 || len(plan.Rows) != 10 || plan.Kind != "Plan" || plan.Rack != "lab" || plan.Provider != "containers" {
		t.Fatalf("plan -o json: exit %d, kind %q rack %q provider %q, %d rows, %v", code, plan.Kind, plan.Rack, plan.Provider, len(plan.Rows), err)
	}
	k3d, _, _ := rackdrill(t, "plan", "-t", "kind-configs/k3d-ha.yaml", "--scenario", "lb-master-lost")
	if !strings.Contains(k3d, "NOT APPLICABLE") {
		t.Errorf("k3d lb-master-lost:\n%s", k3d)
	}
}

// TestPlanDerivesEachExampleRack: the example racks written from the seeds
// plan with their own promises, each difference from the document said with
// its reason before anything runs.
func TestPlanDerivesEachExampleRack(t *testing.T) {
	row := func(out, fault string) string {
		_, after, ok := strings.Cut(out, ". "+fault+": ")
		if !ok {
			t.Fatalf("plan lacks %s:\n%s", fault, out)
		}
		block, _, _ := strings.Cut(after, "\n\n")
		return block
	}
	seed000, errOut, code := rackdrill(t, "plan", "-t", "kind-configs/rack-seed000.example.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"Promises of the document this rack cannot keep:",
		"  - server-kill-1 (seed 004",
		"  - cp-lb-lost (seed 001",
	} {
		if !strings.Contains(seed000, want) {
			t.Errorf("seed 000 plan lacks %q:\n%s", want, seed000)
		}
	}
	// The quorum noted and the API down: never "quorum lost" with the API
	// expected up.
	kill := row(seed000, "server-kill-1")
	for _, want := range []string{"labels:  disruptive, quorum", "below the quorum of 2", "QUORUM:", "expects: api=down", "differs: api"} {
		if !strings.Contains(kill, want) {
			t.Errorf("seed 000 server-kill-1 lacks %q:\n%s", want, kill)
		}
	}
	if lan := row(seed000, "cp-lb-lost"); !strings.Contains(lan, "lan=down") || !strings.Contains(lan, "lan is gone with the VIP") {
		t.Errorf("seed 000 cp-lb-lost:\n%s", lan)
	}
	if w := row(seed000, "worker-lost"); !strings.Contains(w, "NOT APPLICABLE: no worker runs the apps: there is no worker to lose (1 tainted worker(s)") {
		t.Errorf("seed 000 worker-lost:\n%s", w)
	}

	seed002, errOut, code := rackdrill(t, "plan", "-t", "kind-configs/rack-seed002.example.yaml", "-o", "json")
	var plan struct {
		Rows []struct {
			Row     struct{ Fault string }
			Plan    struct{ Applicable bool }
			Derived *struct{ NotApplicable string }
		}
	}
	if err := json.Unmarshal([]byte(seed002), &plan); err != nil || code != 0 {
		t.Fatalf("seed 002: exit %d, %v: %s", code, err, errOut)
	}
	rows := plan.Rows
	var applicable []string
	for _, r := range rows {
		if r.Plan.Applicable {
			applicable = append(applicable, r.Row.Fault)
		} else if r.Derived == nil || r.Derived.NotApplicable == "" {
			t.Errorf("seed 002 %s: not applicable without a reason", r.Row.Fault)
		}
	}
	if got := strings.Join(applicable, ","); got != "nfs-lost,worker-lost,ups-power-loss" {
		t.Errorf("seed 002 applicable rows %s", got)
	}

	// Its NAS is an appliance without systemd: the plan says its dead-man
	// timer is a shell timer.
	nfs, errOut, code := rackdrill(t, "plan", "-t", "kind-configs/rack-seed002.example.yaml", "--scenario", "nfs-lost")
	if code != 0 || !strings.Contains(nfs, "mycloud-ex2  dead-man timer (a detached shell timer, setsid sleep 2m0s, for a machine without systemd") {
		t.Errorf("seed 002 nfs-lost: exit %d %s\n%s", code, errOut, nfs)
	}

	seed004, errOut, code := rackdrill(t, "plan", "-t", "kind-configs/rack-seed004.example.yaml", "--scenario", "server-kill-1")
	if code != 0 || !strings.Contains(seed004, "worker-lost's promises apply") || !strings.Contains(seed004, "apps=up(blip<=1m30s") || strings.Contains(seed004, "QUORUM") {
		t.Errorf("seed 004 server-kill-1: exit %d %s\n%s", code, errOut, seed004)
	}
}

func TestUnknownInputExits2(t *testing.T) {
	for _, args := range [][]string{{"explode"}, {"plan", "--fault", "meteor"}, {"plan", "--scenario", "meteor"}, {"plan", "-o", "yaml"},
		{"plan", "--provider", "bogus"}, {"version", "-o", "yaml"}} {
		_, errOut, code := rackdrill(t, args...)
		if code != 2 || errOut == "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
}

// TestReportRendersASavedRun: `rackdrill report RUN.json --baseline OLD.json`
// writes report.html and junit.xml where asked; a file that is not a run is
// refused with exit 2, naming it.
func TestReportRendersASavedRun(t *testing.T) {
	out := t.TempDir()
	stdout, stderr, code := rackdrill(t, "report", "reports/testdata/run.json.gz", "--baseline", "reports/testdata/run.json.gz", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, stdout, stderr)
	}
	for _, f := range []string{"report.html", "junit.xml"} {
		if fi, err := os.Stat(filepath.Join(out, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	if !strings.Contains(stdout, "verdict: ") {
		t.Errorf("stdout %q does not give the verdict", stdout)
	}
	_, stderr, code = rackdrill(t, "report", "go.mod")
	if code != 2 || !strings.Contains(stderr, "go.mod: not a run.json") {
		t.Errorf("report go.mod: exit %d, stderr %q", code, stderr)
	}
}

// The agent image of a rack is built for the architectures its servers and
// workers declare (seed 001: x86_64 servers, ARM64 Raspberry Pis), and its
// index lists exactly those; an architecture rackdrill cannot build is
// refused by name.
func TestProbesImageFollowsTheTopology(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles the agent")
	}
	out, errOut, code := rackdrill(t, "probes", "image", "--topology", "kind-configs/rack-seed001.example.yaml")
	if code != 0 || !strings.Contains(out, "platforms: linux/amd64, linux/arm64\n") || !strings.Contains(out, "image:     rackdrill.dev/probe/agent:") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	_, errOut, code = rackdrill(t, "probes", "image", "--arch", "amd64", "--arch", "sparc")
	if code != 2 || !strings.Contains(errOut, `architecture "sparc"`) {
		t.Errorf("--arch sparc: exit %d\n%s", code, errOut)
	}
}

// TestStandaloneFromAnyDirectory: an installed rackdrill (go install) has no
// repository around it. validate, plan and a real rack's dry run work from
// any directory: the documented matrix and overlays are built in.
func TestStandaloneFromAnyDirectory(t *testing.T) {
	dir := t.TempDir()
	// The user's state folder (the fault ledgers), kept out of the home
	// folder of whoever runs the tests.
	state := filepath.Join(t.TempDir(), "state")
	t.Setenv(fault.StateEnv, state)
	seed, err := os.ReadFile("../../kind-configs/rack-seed001.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rack.yaml"), seed, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, string, int) { return rackdrillIn(t, dir, args...) }
	if out, errOut, code := run("validate", "rack.yaml"); code != 0 || !strings.Contains(out, "rack.yaml: ok") {
		t.Errorf("validate: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code := run("plan", "-t", "rack.yaml")
	if code != 0 || !strings.Contains(out, "scenarios/impact-matrix.yaml (built in)") || strings.Count(out, "    expects: ") != 9 {
		t.Errorf("plan: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = run("run", "-t", "rack.yaml", "--dry-run", "--scenario", "nfs-lost")
	if code != 0 || !strings.Contains(out, "nfs-lost") || !strings.Contains(out, "dry run") {
		t.Errorf("run --dry-run: exit %d\n%s%s", code, out, errOut)
	}
	// A dry run writes nothing: no artifacts folder, no ledger.
	for _, p := range []string{filepath.Join(dir, "_artifacts"), state} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the dry run wrote %s (%v)", p, err)
		}
	}
	if strings.Contains(out+errOut, "run rackdrill from its repository") {
		t.Errorf("needs the repository:\n%s%s", out, errOut)
	}

	// preflight and recover against an ssh rack: a rack on loopback, where
	// nothing listens on its SSH port, so that preflight goes as far as a
	// real rack takes it before its first connection, and names the host.
	key := filepath.Join(dir, "key")
	if b, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, b)
	}
	if err := os.WriteFile(filepath.Join(dir, "known_hosts"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	loopback := `apiVersion: rackdrill.dev/v1alpha1
kind: Rack
metadata: {name: loopback}
spec:
  provider: ssh
  kubernetes: {distribution: k3s, version: v1.33.5+k3s1}
  networks: [{name: lan, cidr: 127.77.0.0/24, purpose: admin}]
  nodes:
    - {name: s1, roles: [server], address: 127.77.0.10}
    - {name: w1, roles: [worker], address: 127.77.0.21}
  controlPlane: {endpoint: {host: 127.77.0.10}}
  ssh: {user: nobody, port: 1, identityFile: key, knownHosts: known_hosts}
`
	if err := os.WriteFile(filepath.Join(dir, "loopback.yaml"), []byte(loopback), 0o644); err != nil {
		t.Fatal(err)
	}
	art := filepath.Join(dir, "artifacts-loopback")
	out, errOut, code = run("preflight", "--to", "v1.34.x", "-t", "loopback.yaml", "--artifacts", art)
	if code != 2 || !strings.Contains(errOut, "node s1 (127.77.0.10:1) is unreachable over SSH") || strings.Contains(out+errOut, "repository") {
		t.Errorf("preflight: exit %d, want 2 naming the unreachable host\n%s%s", code, out, errOut)
	}
	out, errOut, code = run("recover", "-t", "loopback.yaml", "--artifacts", art)
	if code != 0 || !strings.Contains(out+errOut, "nothing to recover") ||
		!strings.Contains(out, "rack loopback: no fault in "+filepath.Join(state, "racks", "loopback", "ledger")) {
		t.Errorf("recover: exit %d, want where it looked\n%s%s", code, out, errOut)
	}
	// up builds the lab from rackdrill's source: outside the repository it
	// says so, and what works from anywhere.
	lab, err := os.ReadFile("../../kind-configs/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "lab.yaml"), lab, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = run("up", "-t", "lab.yaml", "--artifacts", filepath.Join(dir, "artifacts-lab"))
	if code != 2 || !strings.Contains(errOut, "run this from a clone of rackdrill's repository") || !strings.Contains(errOut, "work from anywhere") {
		t.Errorf("up outside the repository: exit %d\n%s%s", code, out, errOut)
	}
}

// preflight --runbook prints a rack's upgrade, step by step, and writes it to
// the artifacts, connecting nowhere: the seeds' racks are never contacted
// from here, yet their runbooks are made.
func TestPreflightRunbook(t *testing.T) {
	for _, tc := range []struct{ topology, to, want string }{
		{"kind-configs/rack-seed001.example.yaml", "v1.33.13", "sudo kubeadm upgrade apply -y v1.33.13"},
		{"kind-configs/rack-seed002.example.yaml", "v1.33.6+k3s1", "sudo systemctl restart k3s-agent"},
	} {
		art := t.TempDir()
		out, errOut, code := rackdrill(t, "preflight", "--to", tc.to, "--runbook", "-t", tc.topology, "--artifacts", art)
		if code != 0 || !strings.Contains(out, tc.want) {
			t.Errorf("%s: exit %d\n%s%s", tc.topology, code, out, errOut)
			continue
		}
		written, err := os.ReadFile(filepath.Join(art, "preflight", "runbook.txt"))
		if err != nil || !strings.Contains(out, string(written)) {
			t.Errorf("%s: runbook.txt is not what was printed: %v", tc.topology, err)
		}
	}
	_, errOut, code := rackdrill(t, "preflight", "--to", "v1.35.0", "--runbook", "-t", "kind-configs/rack-seed001.example.yaml", "--artifacts", t.TempDir())
	if code != 2 || !strings.Contains(errOut, "skips a minor") {
		t.Errorf("a target the skew policy refuses: exit %d\n%s", code, errOut)
	}
}

// rehearse upgrades the lab only: a real rack is refused before anything is
// built or reached, and so is a target the version skew policy refuses (with
// the preflight's message, not "the lab cannot build it": v1.35.0 was refused
// for that) or a release the lab cannot build. (The rehearsal itself is
// `make rehearse`: it builds a release and upgrades a lab.)
func TestRehearseRefuses(t *testing.T) {
	for _, tc := range []struct{ topology, from, to, want string }{
		{"kind-configs/rack-seed001.example.yaml", "", "v1.34.4", "never on a real rack; its runbook: rackdrill preflight --to v1.34.4 --runbook"},
		{"kind-configs/lab.yaml", "", "v1.35.0", "the version skew policy refuses it"},
		{"kind-configs/lab.yaml", "", "v1.33.13", "not newer than the rack's v1.33.13"},
		// A release the lab does not ship is derived through the module
		// proxy, which serves no k8s.io/kubernetes v1.34.99 (there is none).
		{"kind-configs/lab.yaml", "", "v1.34.99", "--to v1.34.99: Kubernetes v1.34.99: the Go module proxy does not give k8s.io/kubernetes@v1.34.99"},
		{"kind-configs/lab.yaml", "1.33.6", "v1.34.4", `--from "1.33.6": want the rack's Kubernetes release`},
		{"kind-configs/lab.yaml", "v1.34.4", "v1.34.4", "not newer than the rack's v1.34.4"},
		{"kind-configs/lab.yaml", "v1.30.14", "v1.31.0", "--from v1.30.14: Kubernetes v1.30.14: the lab builds v1.31 and newer"},
	} {
		art := t.TempDir()
		args := []string{"rehearse", "--to", tc.to, "-t", tc.topology, "--artifacts", art}
		if tc.from != "" {
			args = append(args, "--from", tc.from)
		}
		_, errOut, code := rackdrill(t, args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s --from %q --to %s: exit %d\n%s", tc.topology, tc.from, tc.to, code, errOut)
		}
		if entries, _ := os.ReadDir(art); len(entries) != 0 {
			t.Errorf("%s --to %s: wrote %v", tc.topology, tc.to, entries)
		}
	}
}

// No selection reaches the upgrade rehearsal on a real rack: a label filter
// that selects it is refused before any machine is dialled (the seed rack's
// addresses moved to loopback, so that even a broken gate could only knock
// on this machine's door).
func TestRunRefusesTheRehearsalOnARealRack(t *testing.T) {
	seed, err := os.ReadFile("../../kind-configs/rack-seed001.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	topo := filepath.Join(t.TempDir(), "rack.yaml")
	if err := os.WriteFile(topo, []byte(strings.ReplaceAll(string(seed), "192.168.", "127.77.")), 0o644); err != nil {
		t.Fatal(err)
	}
	// rackdrill run has no target release, so no rehearsal: selecting it
	// alone selects nothing, and is refused saying where it runs.
	_, errOut, code := rackdrill(t, "run", "-t", topo, "--label-filter", "rehearsal", "--artifacts", t.TempDir())
	if code != 2 || !strings.Contains(errOut, "selects no spec: nothing was run") ||
		!strings.Contains(errOut, "rackdrill rehearse --to vX.Y.Z on the lab only") || strings.Contains(errOut, "unreachable") {
		t.Errorf("--label-filter rehearsal: exit %d\n%s", code, errOut)
	}
	// Beside other specs, it is not among those planned.
	out, errOut, code := rackdrill(t, "run", "-t", topo, "--label-filter", "conformance || rehearsal", "--dry-run", "--artifacts", t.TempDir())
	if code != 0 || strings.Contains(out+errOut, "rolling-upgrade") || strings.Contains(errOut, "unreachable") {
		t.Errorf("--label-filter 'conformance || rehearsal' --dry-run: exit %d\n%s\n%s", code, out, errOut)
	}
}

// Issue 36, the conventions of kubectl, kind and k3d: a version command, a
// topology that is never a silent default outside a clone, a warning said
// once, -o json with a kind.
func TestCLIConventions(t *testing.T) {
	out, errOut, code := rackdrill(t, "version")
	if code != 0 || !strings.HasPrefix(out, "rackdrill ") || !strings.Contains(out, "go:     go1.") {
		t.Errorf("version: exit %d\n%s%s", code, out, errOut)
	}
	js, _, code := rackdrill(t, "version", "-o", "json")
	var v struct{ Kind, Version, Module, Go string }
	if err := json.Unmarshal([]byte(js), &v); err != nil || code != 0 || v.Kind != "Version" || v.Module != "rackdrill.dev/rackdrill" || v.Version == "" {
		t.Errorf("version -o json: exit %d, %+v, %v\n%s", code, v, err, js)
	}

	// Outside a clone, no topology means no rack: the lab's file is the
	// default only where it exists. $RACKDRILL_TOPOLOGY names one.
	dir := t.TempDir()
	out, errOut, code = rackdrillIn(t, dir, "plan")
	if code != 2 || !strings.Contains(errOut, "no topology: give the rack's file with --topology FILE or $RACKDRILL_TOPOLOGY") {
		t.Errorf("plan outside a clone without --topology: exit %d\n%s%s", code, out, errOut)
	}
	seed, err := os.ReadFile("../../kind-configs/rack-seed000.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "home.yaml"), seed, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RACKDRILL_TOPOLOGY", "home.yaml")
	out, errOut, code = rackdrillIn(t, dir, "plan", "--scenario", "nfs-lost")
	if code != 0 || !strings.Contains(out, "Plan for rack seed000") {
		t.Errorf("plan with $RACKDRILL_TOPOLOGY: exit %d\n%s%s", code, out, errOut)
	}
	// The topology's warning, said once although the CLI and the suites
	// both load the file.
	t.Setenv(fault.StateEnv, t.TempDir())
	out, errOut, code = rackdrillIn(t, dir, "run", "--dry-run", "--scenario", "nfs-lost")
	if n := strings.Count(out+errOut, "etcd quorum is 2"); code != 0 || n != 1 {
		t.Errorf("run --dry-run: exit %d, the quorum warning said %d times, want once\n%s%s", code, n, out, errOut)
	}
	t.Setenv("RACKDRILL_TOPOLOGY", "")

	js, _, code = rackdrill(t, "validate", "-o", "json", "kind-configs/lab.yaml", "harness/topology/testdata/invalid-no-provider.yaml")
	var val struct {
		Kind  string
		Files []struct {
			File, Rack, Error string
			OK                bool
		}
	}
	if err := json.Unmarshal([]byte(js), &val); err != nil || code != 2 || val.Kind != "Validation" || len(val.Files) != 2 ||
		!val.Files[0].OK || val.Files[0].Rack != "lab" || val.Files[1].OK || !strings.Contains(val.Files[1].Error, "spec.provider: Required value") {
		t.Errorf("validate -o json: exit %d, %+v, %v\n%s", code, val, err, js)
	}
}

// status looks at any rack and says, by its exit status, whether it is up: a
// rack with no machine is not (exit 1, the reason printed), -o json too.
func TestStatusOfARackThatIsNotUp(t *testing.T) {
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("lists the lab's containers: needs Docker")
	}
	lab, err := os.ReadFile("../../kind-configs/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ghost := strings.Replace(string(lab), "name: lab\n", "name: ghost-rack\n", 1)
	if err := os.WriteFile(filepath.Join(dir, "ghost.yaml"), []byte(ghost), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := rackdrillIn(t, dir, "status", "-t", "ghost.yaml")
	if code != 1 || !strings.Contains(out, "rack ghost-rack is not up") || !strings.Contains(out, "no machine of rack ghost-rack exists") {
		t.Errorf("status of a rack that does not exist: exit %d, want 1\n%s%s", code, out, errOut)
	}
	js, _, code := rackdrillIn(t, dir, "status", "-t", "ghost.yaml", "-o", "json")
	var st struct {
		Kind, Rack string
		Up         bool
		Problems   []string
	}
	if err := json.Unmarshal([]byte(js), &st); err != nil || code != 1 || st.Kind != "Status" || st.Rack != "ghost-rack" || st.Up || len(st.Problems) != 1 {
		t.Errorf("status -o json: exit %d, %+v, %v\n%s", code, st, err, js)
	}
}
