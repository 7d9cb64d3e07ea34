package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/onsi/ginkgo/v2/types"

	"rackdrill.dev/rackdrill/suites/framework"
)

// `rackdrill run` checks the rack's conformance before it drills it: with any
// ginkgo seed, every conformance spec comes before every pre-upgrade spec,
// and those before every chaos drill, and the rehearsal last. Ginkgo runs one tree per process, so
// each seed is a dry run (no spec runs, no rack is needed) in a child process.
func TestSuitesRunInOrderWhateverTheSeed(t *testing.T) {
	if seed := os.Getenv("RACKDRILL_ORDER_CHILD_SEED"); seed != "" {
		s, _ := strconv.ParseInt(seed, 10, 64)
		_, _, err := framework.RunInProcess(framework.RunConfig{
			Options: framework.Options{Topology: os.Getenv("RACKDRILL_ORDER_TOPOLOGY"), Provider: "containers",
				Artifacts: os.Getenv("RACKDRILL_ORDER_ARTIFACTS"), UpgradeTo: os.Getenv("RACKDRILL_ORDER_TO")},
			Suites: "conformance+chaos", LabelFilter: cmp.Or(os.Getenv("RACKDRILL_ORDER_LABELS"), "conformance || preupgrade || chaos || rehearsal"), DryRun: true, Seed: s,
		}, logr.Discard())
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	never := filepath.Join(t.TempDir(), "never-up.yaml")
	lab, err := os.ReadFile("../../kind-configs/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(never, []byte(strings.Replace(string(lab), "name: lab\n", "name: order-never-up\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	rank := map[string]int{"conformance": 1, "preupgrade": 2, "chaos": 3, "rehearsal": 4, "after-upgrade": 5}
	for _, seed := range []int64{1, 7, 1234567} {
		reports := dryRunSuites(t, never, seed, "v1.34.4")
		last, lastSpec, seen := 0, "", map[string]int{}
		for _, s := range reports[0].SpecReports {
			if s.LeafNodeType != types.NodeTypeIt || len(s.ContainerHierarchyTexts) < 2 {
				continue
			}
			suite := s.ContainerHierarchyTexts[1]
			r, ok := rank[suite]
			if !ok {
				t.Fatalf("seed %d: spec %q is in no known suite (%q)", seed, s.FullText(), s.ContainerHierarchyTexts)
			}
			if r < last {
				t.Errorf("seed %d: %q ran after %q", seed, s.FullText(), lastSpec)
			}
			last, lastSpec = r, s.FullText()
			seen[suite]++
		}
		if seen["conformance"] == 0 || seen["preupgrade"] == 0 || seen["chaos"] == 0 || seen["rehearsal"] != 1 ||
			seen["after-upgrade"] != seen["conformance"] {
			t.Errorf("seed %d: specs per suite %v, want every suite", seed, seen)
		}
	}
}

// dryRunSuites is a child process's dry run of every suite with the given
// seed and target release: ginkgo's report of the specs it would run.
func dryRunSuites(t *testing.T, topology string, seed int64, to string, labels ...string) []types.Report {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestSuitesRunInOrderWhateverTheSeed$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("RACKDRILL_ORDER_CHILD_SEED=%d", seed),
		"RACKDRILL_ORDER_TOPOLOGY="+topology, "RACKDRILL_ORDER_ARTIFACTS="+dir, "RACKDRILL_ORDER_TO="+to,
		"RACKDRILL_ORDER_LABELS="+strings.Join(labels, ""))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("seed %d: %v\n%s", seed, err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "ginkgo.json"))
	if err != nil {
		t.Fatal(err)
	}
	var reports []types.Report
	if err := json.Unmarshal(data, &reports); err != nil || len(reports) != 1 {
		t.Fatalf("seed %d: ginkgo.json: %v", seed, err)
	}
	return reports
}

// A run without a target release (rackdrill run, whatever its label filter:
// '!power' selects every label but one) has no pre-upgrade check and no
// rehearsal: they would fail for want of --to, and the rehearsal is never
// selectable where it cannot run.
func TestNoUpgradeSpecsWithoutATarget(t *testing.T) {
	lab, err := os.ReadFile("../../kind-configs/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	never := filepath.Join(t.TempDir(), "never-up.yaml")
	if err := os.WriteFile(never, []byte(strings.Replace(string(lab), "name: lab\n", "name: order-never-up\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	reports := dryRunSuites(t, never, 1, "")
	run := 0
	for _, s := range reports[0].SpecReports {
		if s.LeafNodeType != types.NodeTypeIt || s.State.Is(types.SpecStateSkipped) {
			continue
		}
		run++
		for _, labels := range s.ContainerHierarchyLabels {
			if slices.Contains(labels, "preupgrade") || slices.Contains(labels, "rehearsal") {
				t.Errorf("without --to, %q (labels %v) would run", s.FullText(), labels)
			}
		}
	}
	if run == 0 {
		t.Error("without --to, no spec would run at all")
	}
	// rackdrill preflight --to: the checks before an upgrade, not the
	// rehearsal nor the checks after it.
	for _, s := range dryRunSuites(t, never, 1, "v1.34.4", preflightLabels)[0].SpecReports {
		if s.LeafNodeType == types.NodeTypeIt && !s.State.Is(types.SpecStateSkipped) && len(s.ContainerHierarchyTexts) > 1 &&
			s.ContainerHierarchyTexts[1] != "conformance" && s.ContainerHierarchyTexts[1] != "preupgrade" {
			t.Errorf("rackdrill preflight would run %q", s.FullText())
		}
	}
}
