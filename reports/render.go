package reports

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"rackdrill.dev/rackdrill/harness/runrecord"
)

// Written are the files Render wrote.
type Written struct {
	HTML, JUnit string
}

// Render writes report.html and junit.xml of run into dir, atomically each
// (a half-written report never replaces a whole one).
func Render(r *runrecord.Run, dir string, baseline *runrecord.Run) (Written, error) {
	w := Written{HTML: filepath.Join(dir, "report.html"), JUnit: filepath.Join(dir, "junit.xml")}
	var html, junit bytes.Buffer
	if err := WriteHTML(&html, r, Options{Baseline: baseline, Dir: dir}); err != nil {
		return w, fmt.Errorf("render the HTML report: %w", err)
	}
	if err := WriteJUnit(&junit, r); err != nil {
		return w, err
	}
	for path, data := range map[string][]byte{w.HTML: html.Bytes(), w.JUnit: junit.Bytes()} {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			return w, err
		}
		if err := os.Rename(tmp, path); err != nil {
			return w, err
		}
	}
	return w, nil
}
