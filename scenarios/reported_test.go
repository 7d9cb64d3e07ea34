package scenarios_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"

	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/scenarios"
)

const reportedChild = "RACKDRILL_TEST_REPORTED_CHILD"

// Issue 35, point 8: a drill whose input failed (an Expect before Run)
// never reached the record: missing from run.json, junit.xml and
// report.html. Every drill is recorded, its cells saying they were not
// judged and why; and a failed drill's message is its verdict's reason
// alone, not Gomega's "Expected <matrix.Verdict>: broken not to equal".
func TestEveryDrillReachesTheRecord(t *testing.T) {
	if out := os.Getenv(reportedChild); out != "" {
		reportedSuite(t, out)
		return
	}
	if testing.Short() {
		t.Skip("runs a ginkgo suite in a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestEveryDrillReachesTheRecord$", "-test.v")
	cmd.Env = append(os.Environ(), reportedChild+"="+dir)
	log, _ := cmd.CombinedOutput() // the suite fails: both drills do
	data, err := os.ReadFile(filepath.Join(dir, "outcomes.json"))
	if err != nil {
		t.Fatalf("no outcome recorded: %v\n%s", err, log)
	}
	var outs []scenarios.Outcome
	if err := json.Unmarshal(data, &outs); err != nil {
		t.Fatal(err)
	}
	if len(outs) != 2 {
		t.Fatalf("%d drills recorded, want 2: %s", len(outs), data)
	}
	in := outs[0]
	if in.Result.Fault != "nfs-lost" || in.Result.Verdict != matrix.Errored || !strings.Contains(in.Error, "the drill failed before it ran") ||
		!strings.Contains(in.Error, "the NAS is not in the topology") {
		t.Errorf("a drill whose input failed: %+v", in)
	}
	if len(in.Result.Cells) != len(matrix.Probes) {
		t.Errorf("its cells: %d, want one per probe, each not judged", len(in.Result.Cells))
	}
	for _, c := range in.Result.Cells {
		if c.Verdict != matrix.Errored || !strings.HasPrefix(c.Why, "not judged: ") {
			t.Errorf("cell %s: %s %q, want error, not judged", c.Probe, c.Verdict, c.Why)
		}
	}
	if outs[1].Result.Verdict != matrix.Broken {
		t.Errorf("the broken drill: %s", outs[1].Result.Verdict)
	}
	msgs, _ := os.ReadFile(filepath.Join(dir, "failures.txt"))
	if strings.Contains(string(msgs), "Expected") || !strings.Contains(string(msgs), "promises broken") {
		t.Errorf("failure messages are the verdicts' reasons alone:\n%s", msgs)
	}
}

func reportedSuite(t *testing.T, dir string) {
	gomega.RegisterFailHandler(ginkgo.Fail)
	var outs []scenarios.Outcome
	ginkgo.Describe("drills", func() {
		ginkgo.Describe("input fails", func() {
			scenarios.ScenarioSpec(context.Background(), quickRow(), 0, func() scenarios.ScenarioInput {
				gomega.Expect(os.ErrNotExist).NotTo(gomega.HaveOccurred(), "the NAS is not in the topology")
				return scenarios.ScenarioInput{}
			}, func(o scenarios.Outcome) { outs = append(outs, o) })
		})
		ginkgo.Describe("broken", func() {
			scenarios.ScenarioSpec(context.Background(), quickRow(), 0, func() scenarios.ScenarioInput {
				in := quickInput(t, &brokenFault{})
				in.Row.Cells["api"] = matrix.Cell{During: matrix.Down, Within: d(100 * time.Millisecond)}
				return in
			}, func(o scenarios.Outcome) { outs = append(outs, o) })
		})
	})
	var failures []string
	ginkgo.ReportAfterEach(func(r ginkgo.SpecReport) {
		if r.Failed() {
			failures = append(failures, r.Failure.Message)
		}
	})
	ginkgo.ReportAfterSuite("write", func(ginkgo.Report) {
		data, _ := json.Marshal(outs)
		_ = os.WriteFile(filepath.Join(dir, "outcomes.json"), data, 0o644)
		_ = os.WriteFile(filepath.Join(dir, "failures.txt"), []byte(strings.Join(failures, "\n----\n")), 0o644)
	})
	ginkgo.RunSpecs(t, "reported")
}

// Issue 35, point 9: the interrupt grace was LongestRevert()+1m (22 min),
// while the power drill's own revert limit is 21 min + the battery budget +
// 30 s, and the dump runs inside the grace too. It is now the selected
// fault's revert limit, battery budget included (fault.RevertLimitFor, which
// harness/fault's TestRevertLimitForIsThePowerDrills pins to the drill's own
// RevertLimit), plus the dump.
func TestInterruptGraceCoversTheRevertAndTheDump(t *testing.T) {
	for _, battery := range []time.Duration{0, 5 * time.Minute, 20 * time.Minute} {
		if g, need := scenarios.RevertGrace("ups-power-loss", battery), fault.RevertLimitFor("ups-power-loss", battery)+scenarios.DumpLimit; g < need {
			t.Errorf("battery %s: grace %s, the revert and the dump need %s", battery, g, need)
		}
	}
	if g := scenarios.RevertGrace("ups-power-loss", 5*time.Minute); g < 26*time.Minute+30*time.Second+scenarios.DumpLimit {
		t.Errorf("a 5 min battery: grace %s, the revert alone needs 26m30s", g)
	}
	if g := scenarios.RevertGrace("nfs-lost", 0); g < fault.DefaultRevertTimeout+scenarios.DumpLimit || g > 20*time.Minute {
		t.Errorf("nfs-lost's grace %s: its revert (%s) and the dump, not the power drill's", g, fault.DefaultRevertTimeout)
	}
}
