// Command ownrack follows the README's "Point it at your machines" section as
// a rack owner does: rackdrill installed with `go install …@version` (from a
// file proxy serving this commit's module zip), run from an empty directory
// against the lab adopted over SSH, each command of the section's code block
// run as written, in a terminal, answering "yes" where it asks. It prints each
// command's output, exit status and time, and fails if one fails.
//
// It needs the lab up (`make lab`); `make own-rack` runs it.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"rackdrill.dev/rackdrill/internal/modinstall"
)

func main() {
	topo := flag.String("topology", "kind-configs/lab-ssh.yaml", "the lab adopted over SSH: the rack the README's my-rack.yaml stands for")
	sshDir := flag.String("ssh", "_artifacts/ssh", "the lab's SSH key and known_hosts (written by rackdrill up)")
	readme := flag.String("readme", "README.md", "the README whose section is followed")
	flag.Parse()
	if err := run(*topo, *sshDir, *readme); err != nil {
		fmt.Fprintln(os.Stderr, "ownrack:", err)
		os.Exit(1)
	}
}

// section is the code block of the README's section on a user's own rack:
// its commands, comments removed.
func section(readme string) ([]string, error) {
	data, err := os.ReadFile(readme)
	if err != nil {
		return nil, err
	}
	_, rest, ok := strings.Cut(string(data), "## Point it at your machines")
	if !ok {
		return nil, fmt.Errorf("%s: no section \"Point it at your machines\"", readme)
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	if !ok {
		return nil, fmt.Errorf("%s: the section has no sh code block", readme)
	}
	block, _, _ := strings.Cut(rest, "```")
	var cmds []string
	for _, l := range strings.Split(block, "\n") {
		if i := strings.Index(l, "#"); i >= 0 {
			l = l[:i]
		}
		if l = strings.TrimSpace(l); l != "" {
			cmds = append(cmds, l)
		}
	}
	if len(cmds) == 0 {
		return nil, fmt.Errorf("%s: no command in the section's code block", readme)
	}
	return cmds, nil
}

func run(topo, sshDir, readme string) error {
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	cmds, err := section(readme)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "rackdrill-ownrack-")
	if err != nil {
		return err
	}
	fmt.Printf("ownrack: installing rackdrill from this commit's module zip into %s\n", tmp)
	t0 := time.Now()
	in, err := modinstall.Install(root, tmp)
	if err != nil {
		return err
	}
	fmt.Printf("ownrack: go install rackdrill.dev/rackdrill/cmd/rackdrill@%s in %s\n", in.Version, time.Since(t0).Round(time.Second))
	work := filepath.Join(tmp, "home")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	doc, err := os.ReadFile(topo)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(sshDir)
	if err != nil {
		return err
	}
	rack := strings.ReplaceAll(string(doc), "_artifacts/ssh/", abs+"/")
	if err := os.WriteFile(filepath.Join(work, "my-rack.yaml"), []byte(rack), 0o644); err != nil {
		return err
	}
	env := append(append(os.Environ(), in.Env...), "RACKDRILL_STATE_DIR="+filepath.Join(tmp, "state"), "PATH="+filepath.Dir(in.Bin)+":"+os.Getenv("PATH"))
	for i, c := range cmds {
		args := strings.Fields(c)
		if args[0] != "rackdrill" {
			return fmt.Errorf("%s: %q is not a rackdrill command", readme, c)
		}
		fmt.Printf("\nownrack: [%d/%d] %s   (in %s)\n", i+1, len(cmds), c, work)
		t1 := time.Now()
		code, err := inTerminal(in.Bin, args[1:], work, env, os.Stdout)
		if err != nil {
			return fmt.Errorf("%s: %w", c, err)
		}
		fmt.Printf("ownrack: [%d/%d] exit %d in %s\n", i+1, len(cmds), code, time.Since(t1).Round(time.Second))
		if code != 0 {
			return fmt.Errorf("%s: exit %d", c, code)
		}
	}
	fmt.Printf("\nownrack: the README's %d commands ran as written, each exit 0, in %s\n", len(cmds), time.Since(t0).Round(time.Second))
	return nil
}

// inTerminal runs bin with args in a pseudo-terminal of its own, as from a
// shell, copying what it prints to out and answering "yes" to its question.
func inTerminal(bin string, args []string, dir string, env []string, out io.Writer) (int, error) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer master.Close()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		return 0, err
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		return 0, err
	}
	tty, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env = dir, env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		tty.Close()
		return 0, err
	}
	tty.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := bufio.NewReader(master)
		var line bytes.Buffer
		for {
			b, err := r.ReadByte()
			if err != nil {
				return
			}
			out.Write([]byte{b})
			line.WriteByte(b)
			if b == '\n' {
				line.Reset()
			}
			if strings.HasSuffix(line.String(), "Type yes to go on: ") {
				fmt.Fprint(out, "yes   (answered by ownrack)\n")
				master.Write([]byte("yes\n"))
				line.Reset()
			}
		}
	}()
	err = cmd.Wait()
	master.Close()
	<-done
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	return 0, err
}
