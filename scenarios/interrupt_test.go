package scenarios_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"

	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/probe"
	"rackdrill.dev/rackdrill/scenarios"
)

const interruptChild = "RACKDRILL_TEST_INTERRUPT_CHILD"

// slowRevert is a fault whose revert outlasts the suite's grace period, as
// powering a real rack's machines on does (minutes): it says so in a file
// when it is done.
type slowRevert struct{ done string }

func (f *slowRevert) Name() string { return "ups-power-loss" }
func (f *slowRevert) Inject(context.Context) error {
	os.Stdout.WriteString("FAULT IN PLACE\n")
	return nil
}
func (f *slowRevert) Revert(context.Context) error {
	time.Sleep(6 * time.Second)
	return os.WriteFile(f.done, []byte("reverted\n"), 0o644)
}
func (f *slowRevert) Record() (string, any) { return "test-slow", nil }

// Ctrl-C during a drill run by ginkgo (as `rackdrill run` runs it) always
// finishes the revert: ginkgo interrupts the spec and would abandon it after
// its grace period (here 2 s, 30 s by default); the drill's spec has a grace
// period of its own that covers its longest revert.
func TestCtrlCDuringADrillFinishesTheRevert(t *testing.T) {
	if done := os.Getenv(interruptChild); done != "" {
		interruptedSuite(t, done)
		return
	}
	if testing.Short() {
		t.Skip("runs a ginkgo suite in a child process")
	}
	done := filepath.Join(t.TempDir(), "reverted")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCtrlCDuringADrillFinishesTheRevert$")
	cmd.Env = append(os.Environ(), interruptChild+"="+done)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	lines := bufio.NewScanner(out)
	var log strings.Builder
	for lines.Scan() {
		log.WriteString(lines.Text() + "\n")
		if strings.Contains(lines.Text(), "FAULT IN PLACE") {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for lines.Scan() {
		log.WriteString(lines.Text() + "\n")
	}
	_ = cmd.Wait()
	if got, err := os.ReadFile(done); err != nil || string(got) != "reverted\n" {
		t.Fatalf("the revert did not finish after Ctrl-C (%v):\n%s", err, log.String())
	}
}

func interruptedSuite(t *testing.T, done string) {
	gomega.RegisterFailHandler(ginkgo.Fail)
	l, err := fault.OpenLedger(filepath.Join(filepath.Dir(done), "ledger"))
	if err != nil {
		t.Fatal(err)
	}
	ginkgo.Describe("a drill", func() {
		scenarios.ScenarioSpec(context.Background(), quickRow(), 0, func() scenarios.ScenarioInput {
			in := quickInput(t, nil)
			in.Guard = fault.NewGuard(l)
			in.Row.Observe = d(time.Minute)
			in.Build = func(context.Context) (fault.Recordable, error) { return &slowRevert{done: done}, nil }
			in.Probes = []probe.Probe{green("api")}
			in.Unprobed = map[string]string{"heal": "-", "lan": "-", "internet": "-", "apps": "-", "storage": "-", "data": "-"}
			return in
		}, func(scenarios.Outcome) {})
	})
	sc, rc := ginkgo.GinkgoConfiguration()
	sc.GracePeriod = 2 * time.Second
	ginkgo.RunSpecs(t, "interrupt", sc, rc)
}
