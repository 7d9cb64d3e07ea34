// Command rackdrill builds or adopts an HA Kubernetes rack, checks that it
// conforms to its architecture document, and drills the faults that document
// promises it survives.
//
// Exit codes: 0 everything held, 1 a matrix cell or check failed, 2 bad input or
// an environment problem (unreadable file, no Docker, unreachable host).
package main

import (
	"errors"
	"fmt"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cmd := newRootCommand()
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "rackdrill: "+err.Error())
	var f *failedError
	if errors.As(err, &f) {
		return 1
	}
	return 2
}

// failedError is a run that completed but found a broken promise: exit 1, as
// opposed to bad input or a broken environment (exit 2).
type failedError struct{ msg string }

func (e *failedError) Error() string { return e.msg }
