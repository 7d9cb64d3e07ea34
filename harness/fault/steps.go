package fault

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/topology"
)

// Each fault type says what it runs, from the very fields it runs with:
// the plan is this description (see Described).

var (
	_ Described = (*NodePower)(nil)
	_ Described = (*Exec)(nil)
	_ Described = (*Remote)(nil)
	_ Described = (*Scale)(nil)
	_ Described = (*Unschedule)(nil)
	_ Described = (*All)(nil)
	_ Described = (*UPSPowerLoss)(nil)
)

// Steps implements Described.
func (f *NodePower) Steps() (inject, revert []Step) {
	how, note := "docker kill", "hard power loss"
	if f.mode == PowerStop {
		how, note = "docker stop", ""
	}
	if f.note != "" {
		note = f.note
	}
	if note != "" {
		how += " (" + note + ")"
	}
	for _, n := range f.nodes {
		inject = append(inject, Step{n.Name(), how})
		revert = append(revert, Step{n.Name(), "docker start"})
	}
	return inject, revert
}

// Steps implements Described.
func (f *Exec) Steps() (inject, revert []Step) {
	where := f.nodeName
	if where == "" {
		where = "here"
	}
	return []Step{{where, strings.Join(f.inject, " ")}}, []Step{{where, strings.Join(f.revert, " ")}}
}

// Steps implements Described: each machine's dead-man timer before its first
// step, the steps, then the reverts last step first and the timers cancelled.
func (f *Remote) Steps() (inject, revert []Step) {
	armed := map[string]bool{}
	for _, s := range f.Cmds {
		if !armed[s.Node] {
			armed[s.Node] = true
			how := fmt.Sprintf("systemd-run --on-active=%s", deadMan(f.Cmds, s.Node))
			if timer(f.Cmds, s.Node) == topology.TimerShell {
				how = fmt.Sprintf("a detached shell timer, setsid sleep %s, for a machine without systemd", deadMan(f.Cmds, s.Node))
			}
			inject = append(inject, Step{s.Node, fmt.Sprintf("dead-man timer (%s, re-armed while rackdrill runs) that runs every revert of this machine below by itself, last step first", how)})
		}
		inject = append(inject, Step{s.Node, "sh -c " + exec.Quote(s.Inject)})
	}
	for i := len(f.Cmds) - 1; i >= 0; i-- {
		revert = append(revert, Step{f.Cmds[i].Node, "sh -c " + exec.Quote(f.Cmds[i].Revert)})
	}
	for _, n := range machines(f.Cmds) {
		revert = append(revert, Step{n, "cancel the dead-man timer"})
	}
	return inject, revert
}

// Steps implements Described.
func (f *Scale) Steps() (inject, revert []Step) {
	obj := f.Namespace + "/" + f.Object
	return []Step{{"cluster", "scale Deployment " + obj + " to 0"}},
		[]Step{{"cluster", "scale Deployment " + obj + " back to its previous replicas"}}
}

// Steps implements Described.
func (f *Unschedule) Steps() (inject, revert []Step) {
	obj := f.Namespace + "/" + f.Object
	return []Step{{"cluster", "move DaemonSet " + obj + " off every node (a nodeSelector no node has)"}},
		[]Step{{"cluster", "restore the previous nodeSelector of DaemonSet " + obj}}
}

// Steps implements Described: the parts in order, reverted last first.
func (f *All) Steps() (inject, revert []Step) {
	for i, p := range f.parts {
		in, _ := p.(Described).Steps()
		inject = append(inject, in...)
		_, re := f.parts[len(f.parts)-1-i].(Described).Steps()
		revert = append(revert, re...)
	}
	return inject, revert
}

// Steps implements Described.
func (f *UPSPowerLoss) Steps() (inject, revert []Step) {
	master := f.params.Master
	who, underway, forces := "upsmon", "upsd reports FSD, SHUTDOWNCMD running, systemd stopping", "upsmon forces the shutdown"
	if f.params.Commands {
		who = "the rack's shutdown script"
		underway = "the forced-shutdown command " + firstWord(f.params.FSD) + " running, systemd stopping"
		forces = "spec.ups.commands.forcedShutdown: the UPS is not NUT's"
	}
	shutdown := Step{master, fmt.Sprintf("%s shuts the rack down in %d stages, then itself, within %s", who, len(f.params.Stages), f.params.Budget)}
	// A shutdown cannot be stopped once it began: power that returns before
	// the master halted would be taken away again.
	wait := Step{master, fmt.Sprintf("if the shutdown is under way (%s): wait for this machine to halt, %s at most", underway, f.params.Budget+upsHaltMargin)}
	if f.params.FSD != "" {
		inject = []Step{{master, "sh -c " + exec.Quote(f.params.FSD) + " (" + forces + ")"}, shutdown}
		revert = append(revert, wait, Step{master, f.powerOn[master]})
		for _, st := range f.params.Stages {
			for _, n := range st {
				revert = append(revert, Step{n, f.powerOn[n]})
			}
		}
		return inject, revert
	}
	inject = []Step{{master, "NUT dummy-ups: ups.status OL -> OB -> OB LB"}, shutdown}
	revert = []Step{{master, "if up and no shutdown under way: ups.status OL, then ask again " + upsmonSettle.String() + " later"}, wait,
		{master, "docker start (power returns: UPS master first), then ups.status OL"}}
	for i, st := range f.params.Stages {
		revert = append(revert, Step{strings.Join(st, ", "), fmt.Sprintf("docker start (stage %d)", i+1)})
	}
	return inject, revert
}

// The planned machine runs nothing: a planned fault is only described.
func (n plannedNode) Command(context.Context, string, ...string) exec.Cmd { return plannedCmd{} }
func (n plannedNode) Roles() []topology.Role                              { return nil }
func (n plannedNode) Addr() netip.Addr                                    { return netip.Addr{} }
func (n plannedNode) Stop(context.Context) error                          { return errPlanned }
func (n plannedNode) Start(context.Context) error                         { return errPlanned }
func (n plannedNode) Kill(context.Context) error                          { return errPlanned }
func (n plannedNode) Running(context.Context) (bool, error)               { return false, errPlanned }

type plannedCmd struct{}

func (c plannedCmd) Run() error                   { return errPlanned }
func (c plannedCmd) SetStdin(io.Reader) exec.Cmd  { return c }
func (c plannedCmd) SetStdout(io.Writer) exec.Cmd { return c }
func (c plannedCmd) SetStderr(io.Writer) exec.Cmd { return c }
func (c plannedCmd) SetEnv(...string) exec.Cmd    { return c }
func (c plannedCmd) SetDir(string) exec.Cmd       { return c }
