// Package modinstall installs rackdrill the way a rack owner does, `go install
// rackdrill.dev/rackdrill/cmd/rackdrill@<version>`, for the tests: the module
// is not published to a proxy these machines reach, so the module zip the Go
// toolchain would fetch for the clone's HEAD is served by a file proxy made
// here, under a pseudo-version of that commit.
package modinstall

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
)

// Path is rackdrill's module.
const Path = "rackdrill.dev/rackdrill"

// Installed is rackdrill installed from a file proxy.
type Installed struct {
	// Bin is the installed binary.
	Bin string
	// Version is the pseudo-version of the clone's HEAD it was installed at.
	Version string
	// Env is what a process needs to fetch the module at Version again (the
	// installed rackdrill builds its probe agent from it): the file proxy
	// before the usual one, and no checksum database for a version made here.
	Env []string
}

// Install serves the clone at root's HEAD from a file proxy under dir and
// installs cmd/rackdrill from it into dir/bin.
func Install(root, dir string) (*Installed, error) {
	if err := exec.Command("git", "-C", root, "rev-parse", "--verify", "HEAD").Run(); err != nil {
		return nil, fmt.Errorf("%s is not a git clone: %w", root, err)
	}
	out, err := exec.Command("git", "-C", root, "show", "-s", "--format=%H %ct", "HEAD").Output()
	if err != nil {
		return nil, fmt.Errorf("git show HEAD: %w", err)
	}
	var commit string
	var unix int64
	if _, err := fmt.Sscanf(string(out), "%s %d", &commit, &unix); err != nil {
		return nil, fmt.Errorf("git show HEAD: %q: %w", out, err)
	}
	when := time.Unix(unix, 0).UTC()
	version := module.PseudoVersion("v0", "", when, commit[:12])
	proxy := filepath.Join(dir, "proxy")
	at := filepath.Join(proxy, Path, "@v")
	if err := os.MkdirAll(at, 0o755); err != nil {
		return nil, err
	}
	zf, err := os.Create(filepath.Join(at, version+".zip"))
	if err != nil {
		return nil, err
	}
	if err := modzip.CreateFromVCS(zf, module.Version{Path: Path, Version: version}, root, "HEAD", ""); err != nil {
		zf.Close()
		return nil, fmt.Errorf("the module zip of HEAD: %w", err)
	}
	if err := zf.Close(); err != nil {
		return nil, err
	}
	gomod, err := exec.Command("git", "-C", root, "show", "HEAD:go.mod").Output()
	if err != nil {
		return nil, err
	}
	for name, content := range map[string][]byte{
		"list":            []byte(version + "\n"),
		version + ".info": fmt.Appendf(nil, `{"Version":%q,"Time":%q}`, version, when.Format(time.RFC3339)),
		version + ".mod":  gomod,
	} {
		if err := os.WriteFile(filepath.Join(at, name), content, 0o644); err != nil {
			return nil, err
		}
	}
	upstream, err := exec.Command("go", "env", "GOPROXY").Output()
	if err != nil {
		return nil, err
	}
	in := &Installed{Bin: filepath.Join(dir, "bin", "rackdrill"), Version: version,
		Env: []string{"GOPROXY=file://" + proxy + "," + strings.TrimSpace(string(upstream)),
			"GONOSUMDB=" + Path, "GOFLAGS=", "GOWORK=off"}}
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	cmd := exec.Command("go", "install", Path+"/cmd/rackdrill@"+version)
	cmd.Dir = work
	cmd.Env = append(append(os.Environ(), in.Env...), "GOBIN="+filepath.Dir(in.Bin))
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go install %s/cmd/rackdrill@%s: %w\n%s", Path, version, err, out)
	}
	return in, nil
}
