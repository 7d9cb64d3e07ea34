package main

import (
	"io"
	"log/slog"

	"github.com/go-logr/logr"
)

// newLogger logs to w: V(0) messages always, V(1)+ with -v.
func newLogger(w io.Writer, verbosity int) logr.Logger {
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.Level(-verbosity)})
	return logr.FromSlogHandler(h)
}
