package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/topology"
	"rackdrill.dev/rackdrill/suites/framework"
)

// The seed rack's addresses (192.168.x) must never be dialled here: every case
// below ends before any connection, which is what it asserts.
const (
	seedRack = "kind-configs/rack-seed001.example.yaml"
	upsRack  = "harness/topology/testdata/valid-seed002.yaml" // seed 002: the rack with the UPS
)

func TestRealRackRefusalsBeforeAnyConnection(t *testing.T) {
	for _, tc := range []struct {
		name, topology string
		args           []string
		want           string
	}{
		{"quorum loss needs its flag", seedRack, []string{"--scenario", "server-kill-2", "--yes"}, "server-kill-2 takes etcd below quorum"},
		{"power needs its flag", upsRack, []string{"--scenario", "ups-power-loss", "--yes"}, "pass --allow-power"},
		{"power needs every machine's power-on", upsRack, []string{"--scenario", "ups-power-loss", "--yes", "--allow-power"}, "no way to power on itx, bananapi-m5"},
		{"chaos rows are named", seedRack, []string{"--label-filter", "chaos", "--yes"}, "name the rows to drill with --scenario"},
		// Whatever selects the rows, the gates see the rows that would run:
		// a label filter alone drills nothing unnamed, and one that adds a
		// row to a named one is refused too.
		{"a label filter selects unnamed rows", seedRack, []string{"--label-filter", "disruptive", "--yes", "--allow-quorum-loss", "--allow-power"},
			"the selection also drills server-kill-1, server-kill-2, lb-master-lost"},
		{"quorum row selected by label", seedRack, []string{"--scenario", "server-kill-2", "--label-filter", "quorum || conformance", "--yes"},
			"server-kill-2 takes etcd below quorum"},
		{"named rows, no terminal", seedRack, []string{"--scenario", "nfs-lost", "--scenario", "server-kill-2", "--allow-quorum-loss", "--label-filter", "chaos"},
			"stdin is not a terminal, pass --yes"},
		{"no terminal, no --yes", seedRack, []string{"--scenario", "nfs-lost"}, "stdin is not a terminal, pass --yes"},
		{"unknown scenario", seedRack, []string{"--scenario", "meteor", "--yes"}, `--scenario "meteor": unknown scenario`},
		{"unknown provider", seedRack, []string{"--provider", "vagrant", "--yes"}, `--provider "vagrant"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"run", "--provider", "ssh", "--topology", tc.topology, "--artifacts", t.TempDir()}, tc.args...)
			stdout, stderr, code := rackdrill(t, args...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 saying %q\nstdout: %s", code, stderr, tc.want, stdout)
			}
			if strings.Contains(stdout, "Running Suite") {
				t.Errorf("specs ran after a refusal:\n%s", stdout)
			}
		})
	}
}

func TestRealRackDryRunPrintsEveryCommandAndStops(t *testing.T) {
	stdout, stderr, code := rackdrill(t, "run", "--provider", "ssh", "--topology", seedRack, "--artifacts", t.TempDir(),
		"--scenario", "cp-lb-lost", "--scenario", "nfs-lost", "--scenario", "server-kill-2", "--allow-quorum-loss", "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"Plan for the real rack seed001 (16 machines over SSH)",
		"inject:  n100-004     dead-man timer (systemd-run --on-active=2m0s",
		"inject:  n100-004     sh -c 'systemctl stop keepalived'",
		"revert:  nas-001      sh -c 'systemctl start haproxy'",
		"inject:  nas-001      sh -c 'iptables -N RACKDRILL-NFS",
		"inject:  next server  sh -c 'systemctl kill --signal=SIGKILL kubelet",
		"QUORUM:  etcd loses its quorum",
		"dry run: nothing was run on any machine",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the plan lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "Running Suite") {
		t.Errorf("a dry run ran specs:\n%s", stdout)
	}
}

func TestConfirmation(t *testing.T) {
	r, _, err := topology.Load("../../" + seedRack)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := fault.PlanFor("nfs-lost", r, topology.ProviderSSH)
	if err != nil {
		t.Fatal(err)
	}
	rows := []framework.PlannedRow{{Plan: pl}}
	for answer, ok := range map[string]bool{"yes\n": true, "y\n": false, "\n": false, "": false, "YES please\n": false} {
		var out strings.Builder
		err := framework.Safety{Stdin: strings.NewReader(answer), Out: &out}.Confirm(r, rows)
		if (err == nil) != ok {
			t.Errorf("answer %q: %v (want confirmed=%v)", answer, err, ok)
		}
		if !strings.Contains(out.String(), "Type yes to go on") {
			t.Errorf("answer %q: no question asked:\n%s", answer, out.String())
		}
	}
	// Nothing to inject (conformance only): no question.
	if err := (framework.Safety{Stdin: strings.NewReader(""), Out: &strings.Builder{}}).Confirm(r, nil); err != nil {
		t.Errorf("conformance only: %v", err)
	}
	if err := (framework.Safety{DryRun: true, Yes: true, Out: &strings.Builder{}}).Confirm(r, rows); !errors.Is(err, framework.ErrDryRun) {
		t.Errorf("--dry-run with --yes still stops after the plan: %v", err)
	}
	devnull, err := os.Open(filepath.Join("/dev", "null"))
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	if err := (framework.Safety{Stdin: devnull, Out: &strings.Builder{}}).Confirm(r, rows); err == nil || !strings.Contains(err.Error(), "not a terminal") {
		t.Errorf("stdin not a terminal: %v", err)
	}
}

// A dry run on a real rack plans and stops: it leaves the artifacts folder as
// it found it. Before, ginkgo's preview of the specs ran the report node,
// which replaced the last real run's run.json with an empty one, and wrote
// ginkgo's own reports. The seed's addresses are moved to loopback, so that
// even a broken dry run could only knock on this machine's door.
func TestDryRunKeepsTheLastRecord(t *testing.T) {
	seed, err := os.ReadFile("../../kind-configs/rack-seed001.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	topo := filepath.Join(dir, "rack.yaml")
	lo := strings.ReplaceAll(strings.ReplaceAll(string(seed), "192.168.", "127.77."), "161.132.4.98", "127.78.0.1")
	if err := os.WriteFile(topo, []byte(lo), 0o644); err != nil {
		t.Fatal(err)
	}
	artifacts := filepath.Join(dir, "artifacts")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	last := []byte(`{"apiVersion":"rackdrill.dev/run/v1","rack":"seed001","drills":[]}` + "\n")
	if err := os.WriteFile(filepath.Join(artifacts, "run.json"), last, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := rackdrill(t, "run", "--topology", topo, "--artifacts", artifacts, "--scenario", "nfs-lost", "--dry-run")
	if code != 0 || !strings.Contains(out, "dry run: nothing was run on any machine") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if got, _ := os.ReadFile(filepath.Join(artifacts, "run.json")); string(got) != string(last) {
		t.Errorf("the dry run replaced the last run.json with:\n%s", got)
	}
	for _, f := range []string{"ginkgo-junit.xml", "ginkgo.json"} {
		if _, err := os.Stat(filepath.Join(artifacts, f)); err == nil {
			t.Errorf("the dry run wrote %s", f)
		}
	}
}
