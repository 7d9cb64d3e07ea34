package ssh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	sshconfig "github.com/kevinburke/ssh_config"
)

// userConfig is the user's OpenSSH client configuration (~/.ssh/config), read
// for what the topology leaves out: a rack owner's `ssh tartaro` works
// through it, and so does rackdrill. nil when there is none.
type userConfig struct {
	path string
	cfg  *sshconfig.Config
}

// loadUserConfig reads path; a missing file is no configuration.
func loadUserConfig(path string) (*userConfig, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cfg, err := sshconfig.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &userConfig{path: path, cfg: cfg}, nil
}

// get is keyword key of Host alias ("" when the file does not set it).
func (u *userConfig) get(alias, key string) string {
	if u == nil {
		return ""
	}
	v, err := u.cfg.Get(alias, key)
	if err != nil {
		return ""
	}
	return v
}

func (u *userConfig) getAll(alias, key string) []string {
	if u == nil {
		return nil
	}
	v, err := u.cfg.GetAll(alias, key)
	if err != nil {
		return nil
	}
	return v
}

// fill completes a machine's access from the user's configuration for Host
// alias, the node's name: HostName (where to dial; the topology's address
// stays the rack's), User, Port, IdentityFile (the first that exists) and
// ProxyJump (one hop), each only where the topology says nothing.
func (u *userConfig) fill(a *access, alias string, set topologySet) error {
	if u == nil {
		return nil
	}
	if h := u.get(alias, "HostName"); h != "" {
		a.host = strings.ReplaceAll(h, "%h", alias)
		a.from = append(a.from, "HostName")
	}
	if v := u.get(alias, "User"); v != "" && !set.user {
		a.user = v
		a.from = append(a.from, "User")
	}
	if v := u.get(alias, "Port"); v != "" && !set.port {
		p, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%s: Host %s: Port %q: %w", u.path, alias, v, err)
		}
		a.port = p
		a.from = append(a.from, "Port")
	}
	if !set.identity {
		for _, f := range u.getAll(alias, "IdentityFile") {
			f = expandHome(f)
			if _, err := os.Stat(f); err == nil {
				a.identity = f
				a.from = append(a.from, "IdentityFile")
				break
			}
		}
	}
	switch j := u.get(alias, "ProxyJump"); {
	case j == "" || strings.EqualFold(j, "none"):
	case strings.Contains(j, ","):
		return fmt.Errorf("%s: Host %s: ProxyJump %q: rackdrill follows one jump host, not a chain", u.path, alias, j)
	default:
		jump, err := u.jumpHost(j, *a)
		if err != nil {
			return fmt.Errorf("%s: Host %s: ProxyJump %q: %w", u.path, alias, j, err)
		}
		a.jump = jump
		a.from = append(a.from, "ProxyJump")
	}
	return nil
}

// topologySet says which settings the topology gave (they win).
type topologySet struct{ user, port, identity bool }

// jumpHost is the access of a ProxyJump spec, [user@]host[:port], where host
// may be a Host alias of the configuration; the jump host is checked against
// the same known_hosts and signs in with the same credentials as the machine
// behind it, unless its own Host entry names others.
func (u *userConfig) jumpHost(spec string, behind access) (*access, error) {
	j := access{node: "jump host " + spec, user: behind.user, port: 22, identity: behind.identity, hosts: behind.hosts, agent: behind.agent}
	rest := spec
	if user, host, ok := strings.Cut(rest, "@"); ok {
		j.user, rest = user, host
	}
	host, port := rest, ""
	if h, p, err := net.SplitHostPort(rest); err == nil {
		host, port = h, p
	}
	if host == "" {
		return nil, errors.New("no host")
	}
	j.host = host
	if h := u.get(host, "HostName"); h != "" {
		j.host = h
	}
	if !strings.Contains(spec, "@") {
		if v := u.get(host, "User"); v != "" {
			j.user = v
		}
	}
	if port == "" {
		port = u.get(host, "Port")
	}
	if port != "" {
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("port %q: %w", port, err)
		}
		j.port = p
	}
	for _, f := range u.getAll(host, "IdentityFile") {
		if f = expandHome(f); fileExists(f) {
			j.identity = f
			break
		}
	}
	j.addr = j.host
	return &j, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// DefaultUserConfig is the user's OpenSSH client configuration.
func DefaultUserConfig() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".ssh", "config")
}

// dialTCP opens a TCP connection to a machine's sshd: directly, or through
// its jump host's SSH connection.
func (p *Provider) dialTCP(ctx context.Context, a access) (net.Conn, error) {
	addr := net.JoinHostPort(a.dialHost(), strconv.Itoa(a.port))
	if a.jump == nil {
		return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	jc, err := p.client(ctx, *a.jump)
	if err != nil {
		return nil, fmt.Errorf("through %s: %w", a.jump.node, err)
	}
	c, err := jc.DialContext(ctx, "tcp", addr)
	if err != nil {
		// A jump host whose connection broke is dialled again next time.
		p.drop(a.jump.node)
		return nil, fmt.Errorf("through %s: %w", a.jump.node, err)
	}
	return c, nil
}
