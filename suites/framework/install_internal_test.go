package framework

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"rackdrill.dev/rackdrill/harness/topology"
)

// Installing the probe workloads changes a real rack: a confirmed plan (or
// --yes) covers it; a run that asked nothing asks on a terminal before
// installing, and refuses without one, saying how to do it.
func TestApproveInstall(t *testing.T) {
	r := &topology.Rack{}
	r.Metadata.Name = "home"
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	for _, tc := range []struct {
		name     string
		approved bool
		stdin    any
		want     string // "" approves
	}{
		{"the confirmed plan covers it", true, devNull, ""},
		{"no terminal, nothing confirmed", false, devNull, "rackdrill probes install --topology home.yaml"},
		{"asked and answered yes", false, "yes\n", ""},
		{"asked and answered no", false, "no\n", "not confirmed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			s := &Safety{Out: &out}
			switch in := tc.stdin.(type) {
			case *os.File:
				s.Stdin = in
			case string:
				s.Stdin = strings.NewReader(in)
			}
			e := &Env{Rack: r, TopologyFile: "home.yaml", installApproved: tc.approved, safety: s}
			err := e.approveInstall("namespace rackdrill-probes does not exist")
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want a refusal saying %q", err, tc.want)
			}
			asked := strings.Contains(out.String(), "Install them as the plan says?")
			if wantAsk := !tc.approved && tc.stdin != any(devNull); asked != wantAsk {
				t.Errorf("asked %v, want %v: %q", asked, wantAsk, out.String())
			}
		})
	}
}
