package main

import (
	"io"
	"log/slog"
	"os"

	"github.com/go-logr/logr"
	"golang.org/x/term"
)

// newLogger logs to w: V(0) messages always, V(1)+ with -v.
func newLogger(w io.Writer, verbosity int) logr.Logger {
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.Level(-verbosity)})
	return logr.FromSlogHandler(h)
}

// colorful says whether output to w may be coloured: a terminal, and no
// NO_COLOR (https://no-color.org) or TERM=dumb. ginkgo's reporter colours
// otherwise, and a log file or CI's would keep its escape codes.
func colorful(w io.Writer) bool {
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
