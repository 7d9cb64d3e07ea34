// Package exec owns how the harness runs a command on a machine: a Cmder makes
// commands (docker exec into a lab node, an SSH session on a real one, a local
// process), and every failure is a RunError that carries the command and its
// output, so a failed step says what ran and what it printed (kind's exec.RunError).
package exec

import (
	"bytes"
	"context"
	"fmt"
	"io"
	osexec "os/exec"
	"strings"
)

// Cmd is one command, configured then run once.
type Cmd interface {
	Run() error
	SetStdin(io.Reader) Cmd
	SetStdout(io.Writer) Cmd
	SetStderr(io.Writer) Cmd
	SetEnv(...string) Cmd
	SetDir(string) Cmd
}

// Cmder makes commands on one machine. Faults are written once against it and run
// the same on a container, over SSH, or locally.
type Cmder interface {
	Command(ctx context.Context, name string, args ...string) Cmd
}

// RunError is a command that failed: what ran, what it printed, and why.
type RunError struct {
	Command []string
	Output  []byte
	Err     error
}

func (e *RunError) Error() string {
	out := strings.TrimSpace(string(e.Output))
	const max = 2000
	if len(out) > max {
		out = "..." + out[len(out)-max:]
	}
	if out == "" {
		return fmt.Sprintf("command %q failed: %v", strings.Join(e.Command, " "), e.Err)
	}
	return fmt.Sprintf("command %q failed: %v\n%s", strings.Join(e.Command, " "), e.Err, out)
}

func (e *RunError) Unwrap() error { return e.Err }

// Output runs cmd and returns its standard output; on failure the RunError holds
// stdout and stderr together.
func Output(cmd Cmd) ([]byte, error) {
	var stdout, both bytes.Buffer
	cmd.SetStdout(io.MultiWriter(&stdout, &both)).SetStderr(&both)
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), withOutput(err, both.Bytes())
	}
	return stdout.Bytes(), nil
}

// Run runs cmd, keeping its combined output only for the error.
func Run(cmd Cmd) error {
	var both bytes.Buffer
	cmd.SetStdout(&both).SetStderr(&both)
	if err := cmd.Run(); err != nil {
		return withOutput(err, both.Bytes())
	}
	return nil
}

func withOutput(err error, out []byte) error {
	if re, ok := err.(*RunError); ok && len(re.Output) == 0 {
		re.Output = out
		return re
	}
	return err
}

// Local runs commands on this machine.
type Local struct{}

var _ Cmder = Local{}

// Command implements Cmder.
func (Local) Command(ctx context.Context, name string, args ...string) Cmd {
	return &localCmd{cmd: osexec.CommandContext(ctx, name, args...), argv: append([]string{name}, args...)}
}

type localCmd struct {
	cmd  *osexec.Cmd
	argv []string
}

func (c *localCmd) Run() error {
	if err := c.cmd.Run(); err != nil {
		return &RunError{Command: c.argv, Err: err}
	}
	return nil
}
func (c *localCmd) SetStdin(r io.Reader) Cmd  { c.cmd.Stdin = r; return c }
func (c *localCmd) SetStdout(w io.Writer) Cmd { c.cmd.Stdout = w; return c }
func (c *localCmd) SetStderr(w io.Writer) Cmd { c.cmd.Stderr = w; return c }
func (c *localCmd) SetEnv(env ...string) Cmd  { c.cmd.Env = append(c.cmd.Environ(), env...); return c }
func (c *localCmd) SetDir(dir string) Cmd     { c.cmd.Dir = dir; return c }

// Quote makes w one word for a POSIX shell: as it is when it holds only
// characters no shell treats specially, else in single quotes.
func Quote(w string) string {
	if w != "" && strings.Trim(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

// Settings is what every Cmd is configured with before it runs. A Cmder's
// command embeds it, calls Init with itself, and gets the setters: they
// return the command, so that calls chain as on any Cmd.
type Settings struct {
	Argv   []string
	Env    []string
	Dir    string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	self   Cmd
}

// Init makes the setters return self, the command argv runs.
func (s *Settings) Init(self Cmd, argv []string) { s.self, s.Argv = self, argv }

func (s *Settings) SetStdin(r io.Reader) Cmd  { s.Stdin = r; return s.self }
func (s *Settings) SetStdout(w io.Writer) Cmd { s.Stdout = w; return s.self }
func (s *Settings) SetStderr(w io.Writer) Cmd { s.Stderr = w; return s.self }
func (s *Settings) SetEnv(e ...string) Cmd    { s.Env = append(s.Env, e...); return s.self }
func (s *Settings) SetDir(d string) Cmd       { s.Dir = d; return s.self }
