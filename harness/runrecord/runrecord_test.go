package runrecord_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"rackdrill.dev/rackdrill/harness/runrecord"
)

// recorded is the run.json of a real `make conformance` on the lab, written
// by rackdrill's first version, before run.json had an apiVersion.
const recorded = "../../reports/testdata/run.json.gz"

// The writer and the reader share one set of types: a real run read, written
// and read again is the same run, now with its apiVersion.
func TestRoundTripOfARealRun(t *testing.T) {
	run, err := runrecord.Load(recorded)
	if err != nil {
		t.Fatalf("the previous, unversioned run.json: %v", err)
	}
	if len(run.Drills) == 0 || len(run.Checks) == 0 || len(run.Drills[0].Timelines) == 0 {
		t.Fatalf("the recorded run read as %d drills, %d checks", len(run.Drills), len(run.Checks))
	}
	path := filepath.Join(t.TempDir(), "run.json")
	if err := run.Write(path); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), `"apiVersion": "`+runrecord.APIVersion+`"`) {
		t.Errorf("written without its apiVersion:\n%.200s", data)
	}
	again, err := runrecord.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(run, again) {
		t.Error("the run read back differs from the run written")
	}
	if again.Verdict() != run.Verdict() {
		t.Errorf("verdict %s, then %s", run.Verdict(), again.Verdict())
	}
}

// A run.json of another version is refused by name, not read wrongly or as
// a list of unknown fields.
func TestLoadRefusesAnUnknownVersion(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"future.json":  `{"apiVersion": "rackdrill.dev/run/v9", "rack": "lab", "drills": [], "newField": 1}`,
		"unknown.json": `{"apiVersion": "` + runrecord.APIVersion + `", "rack": "lab", "drillz": []}`,
		"norack.json":  `{"apiVersion": "` + runrecord.APIVersion + `", "drills": []}`,
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := runrecord.Load(p)
		want := map[string]string{
			"future.json":  `unsupported apiVersion "rackdrill.dev/run/v9"`,
			"unknown.json": `unknown field "drillz"`,
			"norack.json":  "no rack",
		}[name]
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v; want an error naming the file and %q", name, err, want)
		}
	}
}
