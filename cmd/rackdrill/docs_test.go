package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// docFiles are the README and every page of docs/.
func docFiles(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob("../../docs/*.md")
	if err != nil || len(pages) == 0 {
		t.Fatalf("docs/*.md: %v", err)
	}
	return append([]string{"../../README.md"}, pages...)
}

// Every rackdrill command the docs show, in a code block, is a command this
// binary has, with flags it has: a newcomer who copies a line gets what the
// page says, not "unknown flag".
func TestDocsCommandsExist(t *testing.T) {
	root := newRootCommand()
	cmdLine := regexp.MustCompile(`^\s*(?:bin/)?rackdrill\s+(.*)$`)
	checked := 0
	for _, f := range docFiles(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inBlock := false
		var cont string
		for i, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				inBlock = !inBlock
				continue
			}
			if !inBlock {
				continue
			}
			if cont != "" {
				line, cont = cont+" "+strings.TrimSpace(line), ""
			}
			if strings.HasSuffix(strings.TrimSpace(line), "\\") {
				cont = strings.TrimSuffix(strings.TrimSpace(line), "\\")
				continue
			}
			m := cmdLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			rest := m[1]
			if j := strings.Index(rest, " #"); j >= 0 {
				rest = rest[:j]
			}
			rest = strings.NewReplacer("&", " ", ";", " ").Replace(rest)
			args := strings.Fields(rest)
			c, remaining, err := root.Find(args)
			if err != nil || c == root {
				t.Errorf("%s:%d: %q is not a rackdrill command: %v", f, i+1, strings.TrimSpace(line), err)
				continue
			}
			for _, a := range remaining {
				if !strings.HasPrefix(a, "-") {
					continue
				}
				name := strings.TrimLeft(strings.SplitN(a, "=", 2)[0], "-")
				var fl *pflag.Flag
				if len(name) == 1 {
					fl = c.Flags().ShorthandLookup(name)
					if fl == nil {
						fl = c.InheritedFlags().ShorthandLookup(name)
					}
				} else if fl = c.Flags().Lookup(name); fl == nil {
					fl = c.InheritedFlags().Lookup(name)
				}
				if fl == nil {
					t.Errorf("%s:%d: `rackdrill %s` has no flag %s", f, i+1, c.Name(), a)
				}
			}
			checked++
		}
	}
	if checked < 20 {
		t.Errorf("only %d rackdrill command lines found in the docs: the parser no longer sees them", checked)
	}
}

// Every link between the pages leads to a file that exists, and an anchor to a
// heading of that file.
func TestDocsLinks(t *testing.T) {
	link := regexp.MustCompile(`\]\(([^)#\s]+\.(?:md|png|yaml))(#[^)]+)?\)`)
	anchor := func(heading string) string {
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(heading, "#")))
		h = regexp.MustCompile("[^a-z0-9 _-]").ReplaceAllString(h, "")
		return "#" + strings.ReplaceAll(h, " ", "-")
	}
	for _, f := range docFiles(t) {
		data, _ := os.ReadFile(f)
		for _, m := range link.FindAllStringSubmatch(string(data), -1) {
			if strings.HasPrefix(m[1], "http") {
				continue
			}
			target := filepath.Join(filepath.Dir(f), m[1])
			body, err := os.ReadFile(target)
			if err != nil {
				t.Errorf("%s links to %s, which does not exist", f, m[1])
				continue
			}
			if m[2] == "" {
				continue
			}
			found := false
			for _, l := range strings.Split(string(body), "\n") {
				if strings.HasPrefix(l, "#") && anchor(l) == m[2] {
					found = true
				}
			}
			if !found {
				t.Errorf("%s links to %s%s: no such heading", f, m[1], m[2])
			}
		}
	}
}

// The README answers a rack owner's first three questions on its first
// screen: does it fit, how to install, how to point it at real machines
// safely.
func TestREADMEFirstScreen(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	if len(lines) > 150 {
		t.Errorf("the README has %d lines: the details belong in docs/", len(lines))
	}
	first := strings.Join(lines[:min(len(lines), 60)], "\n")
	for _, h := range []string{"## Does it fit my rack?", "## Install", "## Point it at your machines, safely"} {
		if !strings.Contains(first, h) {
			t.Errorf("the README's first 60 lines lack %q", h)
		}
	}
}
