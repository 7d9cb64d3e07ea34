package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	gossh "golang.org/x/crypto/ssh"

	"rackdrill.dev/rackdrill/harness/exec"
)

// Command runs name with args on the machine, through sudo -n when the
// inventory says so. The words are quoted for the remote shell, so that a
// command reads there as it was written here.
func (n *node) Command(ctx context.Context, name string, args ...string) exec.Cmd {
	c := &cmd{n: n, ctx: ctx}
	c.Init(c, append([]string{name}, args...))
	return c
}

type cmd struct {
	exec.Settings
	n   *node
	ctx context.Context
}

// line is the remote command line: sshd runs it with the user's shell.
func (c *cmd) line() string {
	words := make([]string, 0, len(c.Argv)+len(c.Env)+3)
	if c.n.a.sudo {
		words = append(words, "sudo", "-n", "--")
	}
	if len(c.Env) > 0 {
		words = append(words, "env")
		words = append(words, c.Env...)
	}
	words = append(words, c.Argv...)
	for i, w := range words {
		words[i] = exec.Quote(w)
	}
	line := strings.Join(words, " ")
	if c.Dir != "" {
		line = "cd " + exec.Quote(c.Dir) + " && " + line
	}
	return line
}

func (c *cmd) Run() error {
	fail := func(err error) error {
		return &exec.RunError{Command: c.Argv, Err: fmt.Errorf("on node %s: %w", c.n.a.node, err)}
	}
	client, err := c.n.p.client(c.ctx, c.n.a)
	if err != nil {
		return err
	}
	s, err := client.NewSession()
	if err != nil {
		// A connection that broke (the machine rebooted) is dialled again once.
		c.n.p.drop(c.n.a.node)
		if client, err = c.n.p.client(c.ctx, c.n.a); err != nil {
			return err
		}
		if s, err = client.NewSession(); err != nil {
			return fail(err)
		}
	}
	defer s.Close()
	s.Stdin, s.Stdout, s.Stderr = c.Stdin, c.Stdout, c.Stderr
	if s.Stdout == nil {
		s.Stdout = io.Discard
	}
	if s.Stderr == nil {
		s.Stderr = io.Discard
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(c.line()) }()
	select {
	case <-c.ctx.Done():
		_ = s.Signal(gossh.SIGKILL)
		_ = s.Close()
		return fail(c.ctx.Err())
	case err := <-done:
		if err == nil {
			return nil
		}
		var ee *gossh.ExitError
		if errors.As(err, &ee) {
			return fail(fmt.Errorf("exit status %d", ee.ExitStatus()))
		}
		return fail(err)
	}
}
