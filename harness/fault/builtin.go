package fault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/exec"
)

// PowerMode is how a node loses power.
type PowerMode string

const (
	// PowerKill is a hard power loss (docker kill, SIGKILL to every process).
	PowerKill PowerMode = "kill"
	// PowerStop is a clean shutdown (systemd powers off).
	PowerStop PowerMode = "stop"
)

// NodePower takes nodes down and brings them back: server kills, the loss of the
// LB layer, of the VPS, of the NAS, of a worker.
type NodePower struct {
	name  string
	mode  PowerMode
	nodes []cluster.Node
	note  string
}

var _ Recordable = (*NodePower)(nil)

// NewNodePower builds the fault name that takes nodes down by mode.
func NewNodePower(name string, mode PowerMode, nodes ...cluster.Node) *NodePower {
	return &NodePower{name: name, mode: mode, nodes: nodes}
}

func (f *NodePower) Name() string { return f.name }

// WithNote says, in the plan, what the power loss stands for ("the NAS dies").
func (f *NodePower) WithNote(note string) *NodePower { f.note = note; return f }

// Inject powers every node down, in order, and stops at the first failure (the
// guard reverts what was done).
func (f *NodePower) Inject(ctx context.Context) error {
	for _, n := range f.nodes {
		var err error
		switch f.mode {
		case PowerKill:
			err = n.Kill(ctx)
		case PowerStop:
			err = n.Stop(ctx)
		default:
			err = fmt.Errorf("unknown power mode %q", f.mode)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// PowerOnSettle is how long Revert watches the machines it started: a kill
// sent by a run that was itself killed mid-injection may still be in flight
// to the engine, and land after the start (seen by the kill-test: `recover`
// 0.3 s after a SIGKILLed server-kill-2 started server-1, then the dead
// run's kill stopped it).
var PowerOnSettle = 3 * time.Second

// Revert powers every node on, trying all of them even if some fail, then
// makes sure they stay on: a machine found down again within PowerOnSettle
// is started again (three times at most).
func (f *NodePower) Revert(ctx context.Context) error {
	todo := f.nodes
	for attempt := 1; ; attempt++ {
		var errs []error
		for _, n := range todo {
			errs = append(errs, n.Start(ctx))
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(PowerOnSettle):
		}
		var down []cluster.Node
		var names []string
		for _, n := range f.nodes {
			if up, err := n.Running(ctx); err != nil || !up {
				down = append(down, n)
				names = append(names, n.Name())
			}
		}
		if len(down) == 0 {
			return nil
		}
		if attempt == 3 {
			return fmt.Errorf("%s went down again after being started %d times", strings.Join(names, ", "), attempt)
		}
		todo = down
	}
}

type nodePowerParams struct {
	Mode  PowerMode `json:"mode"`
	Nodes []string  `json:"nodes"`
}

// Record implements Recordable.
func (f *NodePower) Record() (string, any) {
	p := nodePowerParams{Mode: f.mode}
	for _, n := range f.nodes {
		p.Nodes = append(p.Nodes, n.Name())
	}
	return "node-power", p
}

// Exec runs a command on a node to inject and another to revert: blocking NFS
// with the harness's own iptables chain, stopping a service. The revert command
// must be idempotent.
type Exec struct {
	name     string
	node     cluster.Node // nil: this machine
	inject   []string
	revert   []string
	nodeName string
}

var _ Recordable = (*Exec)(nil)

// NewExec builds a command fault on node; a nil node runs the commands on this
// machine.
func NewExec(name string, node cluster.Node, inject, revert []string) *Exec {
	f := &Exec{name: name, node: node, inject: inject, revert: revert}
	if node != nil {
		f.nodeName = node.Name()
	}
	return f
}

func (f *Exec) Name() string { return f.name }

func (f *Exec) cmder() exec.Cmder {
	if f.node == nil {
		return exec.Local{}
	}
	return f.node
}

func (f *Exec) Inject(ctx context.Context) error {
	return exec.Run(f.cmder().Command(ctx, f.inject[0], f.inject[1:]...))
}

func (f *Exec) Revert(ctx context.Context) error {
	return exec.Run(f.cmder().Command(ctx, f.revert[0], f.revert[1:]...))
}

type execParams struct {
	Node   string   `json:"node,omitempty"`
	Inject []string `json:"inject"`
	Revert []string `json:"revert"`
}

// Record implements Recordable.
func (f *Exec) Record() (string, any) {
	return "exec", execParams{Node: f.nodeName, Inject: f.inject, Revert: f.revert}
}

func init() {
	Register("node-power", func(ctx context.Context, env Env, name string, raw json.RawMessage) (Fault, error) {
		var p nodePowerParams
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf("fault %s: %w", name, err)
		}
		nodes, err := lookupNodes(ctx, env, p.Nodes...)
		if err != nil {
			return nil, fmt.Errorf("fault %s: %w", name, err)
		}
		return NewNodePower(name, p.Mode, nodes...), nil
	})
	Register("exec", func(ctx context.Context, env Env, name string, raw json.RawMessage) (Fault, error) {
		var p execParams
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf("fault %s: %w", name, err)
		}
		if len(p.Inject) == 0 || len(p.Revert) == 0 {
			return nil, fmt.Errorf("fault %s: ledger entry has no commands", name)
		}
		var node cluster.Node
		if p.Node != "" {
			nodes, err := lookupNodes(ctx, env, p.Node)
			if err != nil {
				return nil, fmt.Errorf("fault %s: %w", name, err)
			}
			node = nodes[0]
		}
		return NewExec(name, node, p.Inject, p.Revert), nil
	})
}

func lookupNodes(ctx context.Context, env Env, names ...string) ([]cluster.Node, error) {
	if env.Nodes == nil {
		return nil, fmt.Errorf("nodes %s: no provider to find them", strings.Join(names, ", "))
	}
	all, err := env.Nodes.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	return cluster.ByName(all, names...)
}
