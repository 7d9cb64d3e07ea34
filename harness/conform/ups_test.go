package conform

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/topology"
)

// thisMachine is a UPS master whose commands run here, in a real shell: the
// UPS check runs the rack's own commands (spec.ups.commands) on its master,
// and what those print is what is checked. No UPS can be attached to this
// machine, so the status command is a script printing what one would.
type thisMachine string

func (m thisMachine) Name() string                          { return string(m) }
func (m thisMachine) Roles() []topology.Role                { return nil }
func (m thisMachine) Addr() netip.Addr                      { return netip.Addr{} }
func (m thisMachine) Stop(context.Context) error            { return nil }
func (m thisMachine) Start(context.Context) error           { return nil }
func (m thisMachine) Kill(context.Context) error            { return nil }
func (m thisMachine) Running(context.Context) (bool, error) { return true, nil }
func (m thisMachine) Command(ctx context.Context, name string, args ...string) exec.Cmd {
	return exec.Local{}.Command(ctx, name, args...)
}

var _ cluster.Node = thisMachine("")

// Seed 002's UPS is not NUT's: the check reads it through the rack's status
// command and checks its forced-shutdown command, naming those fields.
func TestUPSCheckUsesTheRacksOwnCommands(t *testing.T) {
	dir := t.TempDir()
	shutdown := filepath.Join(dir, "rack-shutdown")
	if err := os.WriteFile(shutdown, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	notExecutable := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExecutable, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := check(t, "the UPS answers")
	for _, tc := range []struct {
		name, status, shutdown string
		ok                     []string // the detail says
		fails                  []string // the error says
	}{
		{"online", "printf 'ups.status: OL\\nbattery.charge: 100\\n'", shutdown,
			[]string{"status OL", "charge 100%", "shutdown command " + shutdown}, nil},
		{"on battery", "printf 'ups.status: OB DISCHRG\\nbattery.charge: 90\\n'", shutdown,
			nil, []string{`spec.ups.commands.status: UPS riello on itx-2u reports status "OB DISCHRG": not online (OL)`}},
		{"charge under the minimum", "printf 'ups.status: OL CHRG\\nbattery.charge: 30\\n'", shutdown,
			nil, []string{"spec.ups.minCharge: UPS riello's battery is at 30%, under the documented 50%"}},
		{"not upsc's format", "echo ONLINE 100", shutdown,
			nil, []string{"spec.ups.commands.status", `printed no "ups.status: ..." line`, "ONLINE 100"}},
		{"status command fails", "exit 3", shutdown,
			nil, []string{`spec.ups.commands.status: on itx-2u, "exit 3"`}},
		{"shutdown not executable", "printf 'ups.status: OL\\nbattery.charge: 100\\n'", notExecutable + " --now",
			nil, []string{"spec.ups.commands.forcedShutdown", notExecutable + " is not an executable on itx-2u"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _, err := topology.Load("../../kind-configs/rack-seed002.example.yaml")
			if err != nil {
				t.Fatal(err)
			}
			r.Spec.UPS.Commands = &topology.UPSCommands{Status: tc.status, ForcedShutdown: tc.shutdown}
			if why := c.Skip(&Target{Rack: r}); why != "" {
				t.Fatalf("skipped: %s", why)
			}
			detail, err := c.Run(context.Background(), &Target{Rack: r, Nodes: []cluster.Node{thisMachine("itx-2u")}})
			if tc.fails == nil {
				if err != nil {
					t.Fatalf("the check fails: %v", err)
				}
				for _, want := range tc.ok {
					if !strings.Contains(detail, want) {
						t.Errorf("detail %q lacks %q", detail, want)
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("the check passes (%s), want it to fail", detail)
			}
			for _, want := range tc.fails {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}
