// Command killtest proves that a killed run is undone: for each fault of the
// matrix it starts `rackdrill run --scenario F` against the lab, SIGKILLs it
// at a random moment of a chosen phase (settle, injection, observation,
// revert), runs `rackdrill recover`, then checks the rack against a snapshot
// taken before the trial (machines, VIP holder, etcd members, workloads, the
// harness's leftovers). It prints "killtest: recovered R/N, residue clean
// C/N" and writes a JSON record of every trial.
//
// With -no-recover, against the lab adopted over SSH (a topology of provider
// ssh), nothing is run after the kill: the rack must come back by itself, by
// the dead-man timers, within the longest timer plus the row's recovery
// budget; only then is `rackdrill recover` run, to clear the ledger.
//
// It is a benchmark of the harness's promise, not a test of `make test`: it
// needs the lab up (`make lab`) and takes minutes per trial. Run it with
// `make killtest` (TRIALS=2 per fault by default), or `make killtest-ssh`.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/cluster/containers"
	sshprovider "rackdrill.dev/rackdrill/harness/cluster/ssh"
	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/rackstate"
	"rackdrill.dev/rackdrill/harness/topology"
)

// The phases a run prints ("[fault  12s] fault in place"), in order, and how
// long after the phase's line the kill may come.
var phases = []struct {
	line string
	max  func(row *matrix.Row) time.Duration
}{
	{"steady state", func(r *matrix.Row) time.Duration { return r.Settle.Duration / 2 }},
	{"injecting", func(*matrix.Row) time.Duration { return 300 * time.Millisecond }},
	{"fault in place", func(r *matrix.Row) time.Duration { return r.Observe.Duration * 3 / 4 }},
	{"reverting", func(*matrix.Row) time.Duration { return 2 * time.Second }},
}

// Trial is the record of one kill.
type Trial struct {
	Fault string `json:"fault"`
	Phase string `json:"phase"`
	// KilledAfter is from the run's start; InPhase from the phase's line.
	KilledAfter time.Duration `json:"killedAfter"`
	InPhase     time.Duration `json:"inPhase"`
	// Killed is false when the run ended before the moment came.
	Killed bool `json:"killed"`
	// LedgerBefore is how many faults the killed run left in its ledger.
	LedgerBefore int `json:"ledgerBefore"`
	// Recover is what `rackdrill recover` printed, and its exit status.
	Recover     string `json:"recover"`
	RecoverExit int    `json:"recoverExit"`
	Recovered   bool   `json:"recovered"`
	// NoRecover: nothing was run after the kill until the rack was whole
	// again (BackAfter from the kill) or the limit passed.
	NoRecover bool          `json:"noRecover,omitempty"`
	BackAfter time.Duration `json:"backAfter,omitempty"`
	Limit     time.Duration `json:"limit,omitempty"`
	// Residue is every difference from the snapshot taken before the trial.
	Residue      []string      `json:"residue,omitempty"`
	ResidueClean bool          `json:"residueClean"`
	Took         time.Duration `json:"took"`
	Error        string        `json:"error,omitempty"`
}

func main() {
	topo := flag.String("topology", "kind-configs/lab.yaml", "the lab's topology (provider containers)")
	bin := flag.String("rackdrill", "bin/rackdrill", "the rackdrill binary to kill")
	trials := flag.Int("trials", 2, "trials per fault")
	only := flag.String("faults", "", "comma-separated faults (default: every row of the matrix)")
	out := flag.String("out", "_artifacts/killtest", "folder for the trials' artifacts and killtest.json")
	seed := flag.Uint64("seed", uint64(time.Now().UnixNano()), "random seed of the kill moments")
	noRecover := flag.Bool("no-recover", false, "run nothing after the kill: the dead-man timers must bring the rack back (a topology of provider ssh)")
	deadMan := flag.Duration("dead-man", 0, "with -no-recover: the machines' dead-man delay (spec.ssh.deadMan), written into a copy of the topology")
	flag.Parse()
	if *deadMan > 0 {
		t, err := withDeadMan(*topo, *out, *deadMan)
		if err != nil {
			fmt.Fprintln(os.Stderr, "killtest:", err)
			os.Exit(2)
		}
		*topo = t
	}
	if err := run(*topo, *bin, *trials, *only, *out, *seed, *noRecover); err != nil {
		fmt.Fprintln(os.Stderr, "killtest:", err)
		os.Exit(2)
	}
}

func run(topo, bin string, trials int, only, out string, seed uint64, noRecover bool) error {
	r, _, err := topology.Load(topo)
	if err != nil {
		return err
	}
	var p interface {
		cluster.NodeLister
		cluster.KubeconfigSource
	}
	switch {
	case noRecover && r.Spec.Provider == topology.ProviderSSH:
		// The lab's machines adopted over SSH: only a real rack's faults
		// have dead-man timers.
		sp, err := sshprovider.NewProvider(r)
		if err != nil {
			return err
		}
		defer sp.Close()
		p = sp
	case !noRecover && r.Spec.Provider == topology.ProviderContainers:
		p = containers.NewProvider(r.Metadata.Name)
	case noRecover:
		return fmt.Errorf("%s: -no-recover drills a rack over SSH (the lab adopted: kind-configs/lab-ssh.yaml), not provider %s", topo, r.Spec.Provider)
	default:
		return fmt.Errorf("%s: the kill-test drills the lab (provider containers), not %s (-no-recover drills it over SSH)", topo, r.Spec.Provider)
	}
	m, err := matrix.Load("scenarios/impact-matrix.yaml")
	if err != nil {
		return err
	}
	kube := fault.KubeFrom(p, r.APIServerURL())
	take := func(ctx context.Context) (rackstate.Snapshot, error) {
		nodes, err := p.Nodes(ctx)
		if err != nil {
			return rackstate.Snapshot{}, err
		}
		if len(nodes) == 0 {
			return rackstate.Snapshot{}, fmt.Errorf("the lab %s is not up (make lab)", r.Metadata.Name)
		}
		cs, err := kube(ctx)
		if err != nil {
			return rackstate.Snapshot{}, err
		}
		return rackstate.Take(ctx, r, nodes, cs)
	}
	if _, err := take(context.Background()); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(seed, seed>>1|1))
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	// The trials' runs keep the rack's ledger in a state folder of their
	// own (the operator's is left alone), and recover, run from another
	// folder without --topology, must find it there as a user's would.
	if os.Getenv(fault.StateEnv) == "" {
		st, err := filepath.Abs(filepath.Join(out, "state"))
		if err != nil {
			return err
		}
		os.Setenv(fault.StateEnv, st)
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return err
	}
	ledger, err := fault.LedgerFor(r.Metadata.Name)
	if err != nil {
		return err
	}
	fmt.Printf("killtest: seed %d, %d trial(s) per fault, artifacts in %s\n", seed, trials, out)
	var all []Trial
	n := 0
	for fi, row := range m.Rows {
		if only != "" && !strings.Contains(","+only+",", ","+row.Fault+",") {
			continue
		}
		for i := 0; i < trials; i++ {
			// Each fault's trials walk the phases from an offset the seed
			// gives, so that rounds with other seeds kill other phases.
			ph := phases[(fi+i+int(seed%uint64(len(phases))))%len(phases)]
			delay := time.Duration(rng.Int64N(int64(ph.max(&row)) + 1))
			n++
			dir := filepath.Join(out, fmt.Sprintf("%02d-%s", n, row.Fault))
			limit := time.Duration(0)
			if noRecover {
				limit = longestDeadMan(r) + max(row.Recovery.Duration, time.Minute)
			}
			t := trial(bin, topo, dir, ledger, &row, ph.line, delay, take, limit)
			all = append(all, t)
			if noRecover {
				fmt.Printf("killtest: %2d %-18s killed %-5v in %-14q +%-6s (%s from start): back by itself %v after %s (limit %s), ledger left %d%s\n",
					n, t.Fault, t.Killed, t.Phase, t.InPhase.Round(100*time.Millisecond), t.KilledAfter.Round(time.Second),
					t.ResidueClean, t.BackAfter.Round(time.Second), t.Limit, t.LedgerBefore, errSuffix(t))
			} else {
				fmt.Printf("killtest: %2d %-18s killed %-5v in %-14q +%-6s (%s from start): recover exit %d, ledger left %d, residue clean %v%s\n",
					n, t.Fault, t.Killed, t.Phase, t.InPhase.Round(100*time.Millisecond), t.KilledAfter.Round(time.Second),
					t.RecoverExit, t.LedgerBefore, t.ResidueClean, errSuffix(t))
			}
			data, _ := json.MarshalIndent(all, "", "  ")
			if err := os.WriteFile(filepath.Join(out, "killtest.json"), data, 0o644); err != nil {
				return err
			}
		}
	}
	rec, clean := 0, 0
	for _, t := range all {
		if t.Recovered {
			rec++
		}
		if t.ResidueClean {
			clean++
		}
	}
	if noRecover {
		fmt.Printf("killtest: back by itself %d/%d, ledger cleared after %d/%d (record: %s)\n", clean, len(all), rec, len(all), filepath.Join(out, "killtest.json"))
	} else {
		fmt.Printf("killtest: recovered %d/%d, residue clean %d/%d (record: %s)\n", rec, len(all), clean, len(all), filepath.Join(out, "killtest.json"))
	}
	if rec != len(all) || clean != len(all) {
		os.Exit(1)
	}
	return nil
}

func errSuffix(t Trial) string {
	if t.Error != "" {
		return " (" + t.Error + ")"
	}
	if len(t.Residue) > 0 {
		return " residue: " + strings.Join(t.Residue, "; ")
	}
	return ""
}

// trial kills one run at delay after the line of phase, recovers, and checks
// the residue against the rack as it was before.
// With limit, nothing is run after the kill until the rack is as it was, or
// limit passed: only then recover clears the ledger.
func trial(bin, topo, dir string, ledger *fault.Ledger, row *matrix.Row, phase string, delay time.Duration, take func(context.Context) (rackstate.Snapshot, error), limit time.Duration) Trial {
	t := Trial{Fault: row.Fault, Phase: phase, NoRecover: limit > 0, Limit: limit}
	start := time.Now()
	defer func() { t.Took = time.Since(start) }()
	ctx := context.Background()
	// The rack as it is before the trial, once every workload is ready.
	var before rackstate.Snapshot
	for deadline := time.Now().Add(5 * time.Minute); ; {
		s, err := take(ctx)
		if err == nil && len(s.Unready()) == 0 {
			before = s
			break
		}
		if time.Now().After(deadline) {
			t.Error = fmt.Sprintf("the lab is not ready before the trial: %v %v", err, s.Unready())
			return t
		}
		time.Sleep(2 * time.Second)
	}
	args := []string{"run", "--topology", topo, "--scenario", row.Fault, "--artifacts", dir}
	if limit > 0 {
		args = append(args, "--yes", "--allow-quorum-loss", "--allow-power")
	} else {
		args = append(args, "--keep")
	}
	cmd := exec.Command(bin, args...)
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	runStart := time.Now()
	if err := cmd.Start(); err != nil {
		t.Error = err.Error()
		return t
	}
	lines := bufio.NewScanner(stdout)
	seen := make(chan struct{})
	go func() {
		marked := false
		for lines.Scan() {
			if !marked && strings.Contains(lines.Text(), "] "+phase) && strings.Contains(lines.Text(), "["+row.Fault) {
				marked = true
				close(seen)
			}
		}
		if !marked {
			close(seen)
		}
	}()
	<-seen
	phaseAt := time.Now()
	time.Sleep(delay)
	t.InPhase = time.Since(phaseAt)
	t.KilledAfter = time.Since(runStart)
	if err := cmd.Process.Signal(syscall.SIGKILL); err == nil {
		t.Killed = cmd.ProcessState == nil
	}
	_ = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		t.Killed = ws.Signaled() && ws.Signal() == syscall.SIGKILL
	}
	killed := time.Now()
	entries, _ := ledger.Entries()
	t.LedgerBefore = len(entries)
	if limit > 0 {
		diff, err := rackstate.WaitSame(ctx, before, limit, take)
		if err != nil {
			diff = append(diff, "state of the rack: "+err.Error())
		}
		t.BackAfter = time.Since(killed)
		t.Residue = diff
		t.ResidueClean = len(diff) == 0
	}
	rec := exec.Command(bin, "recover")
	rec.Dir = os.TempDir() // not where the run started: the ledger is found from anywhere
	var recOut bytes.Buffer
	rec.Stdout, rec.Stderr = &recOut, &recOut
	_ = rec.Run()
	t.Recover = strings.TrimSpace(recOut.String())
	t.RecoverExit = rec.ProcessState.ExitCode()
	left, lerr := ledger.Entries()
	t.Recovered = t.RecoverExit == 0 && len(left) == 0 && lerr == nil
	if limit > 0 {
		return t
	}
	diff, err := rackstate.WaitSame(ctx, before, 5*time.Minute, take)
	if err != nil {
		diff = append(diff, "state of the rack: "+err.Error())
	}
	t.Residue = diff
	t.ResidueClean = len(diff) == 0
	return t
}

// longestDeadMan is the longest dead-man delay of the rack's machines.
func longestDeadMan(r *topology.Rack) time.Duration {
	var d time.Duration
	for _, n := range r.Spec.Nodes {
		d = max(d, r.DeadMan(n.Name))
	}
	return d
}

// withDeadMan writes a copy of topology path into out with the rack's
// dead-man delay set to d, and returns its path.
func withDeadMan(path, out string, d time.Duration) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	doc := string(data)
	edited := strings.Replace(doc, "\n  ssh:\n", "\n  ssh:\n    deadMan: "+d.String()+"\n", 1)
	if edited == doc {
		return "", fmt.Errorf("%s: no spec.ssh block (\"  ssh:\" on a line of its own) to set deadMan in", path)
	}
	if _, _, err := topology.Parse([]byte(edited), path); err != nil {
		return "", err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	copyPath, err := filepath.Abs(filepath.Join(out, filepath.Base(path)))
	if err != nil {
		return "", err
	}
	return copyPath, os.WriteFile(copyPath, []byte(edited), 0o644)
}
