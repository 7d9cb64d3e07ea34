package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set by a release build (-ldflags "-X main.version=v0.3.0");
// otherwise the module's version as go install recorded it is used.
var version = ""

// VersionInfo is what `rackdrill version` prints.
type VersionInfo struct {
	Kind     string `json:"kind"`
	Version  string `json:"version"`
	Module   string `json:"module"`
	Commit   string `json:"commit,omitempty"`
	Time     string `json:"commitTime,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

// buildVersion reads the binary's own build information: the version a
// release or `go install …@version` gave it, the commit a build from a clone
// records, and the Go that built it.
func buildVersion() VersionInfo {
	v := VersionInfo{Kind: "Version", Version: version, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if v.Version == "" {
			v.Version = "unknown"
		}
		return v
	}
	v.Module = bi.Main.Path
	if v.Version == "" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	if v.Version == "" || v.Version == "(devel)" {
		v.Version = "devel"
	}
	return v
}

func newVersionCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print rackdrill's version, the commit it was built from, and its Go",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v := buildVersion()
			out := cmd.OutOrStdout()
			switch output {
			case "json":
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			case "", "text":
			default:
				return fmt.Errorf("-o %q: want text or json", output)
			}
			fmt.Fprintf(out, "rackdrill %s\n", v.Version)
			if v.Module != "" {
				fmt.Fprintf(out, "  module: %s\n", v.Module)
			}
			if v.Commit != "" {
				c := v.Commit
				if v.Time != "" {
					c += " (" + v.Time + ")"
				}
				if v.Modified {
					c += ", with uncommitted changes"
				}
				fmt.Fprintf(out, "  commit: %s\n", c)
			}
			fmt.Fprintf(out, "  go:     %s %s\n", v.Go, v.Platform)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "text or json")
	return cmd
}
