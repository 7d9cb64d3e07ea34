package containers

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"rackdrill.dev/rackdrill/harness/exec"
)

// sshAccess gives every machine the rack's own key (made here, kept in the
// artifacts folder), starts sshd, records every host key in known_hosts, and
// checks each machine over SSH against that file: the lab's machines answer
// SSH as a real rack's do, for the UPS shutdown and the ssh provider.
func (u *upRun) sshAccess(ctx context.Context) error {
	dir := filepath.Join(u.p.artifacts, "ssh")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	block, err := ssh.MarshalPrivateKey(priv, "rackdrill "+u.r.Metadata.Name)
	if err != nil {
		return err
	}
	keyPath := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(block), 0o600); err != nil {
		return err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return err
	}
	authorized := string(ssh.MarshalAuthorizedKey(sshPub))
	if err := os.WriteFile(keyPath+".pub", []byte(authorized), 0o644); err != nil {
		return err
	}
	u.sshKey = pem.EncodeToMemory(block)
	lines := make([]string, len(u.all()))
	err = u.each(u.all(), func(n *node) error {
		if err := write(ctx, n, "/root/.ssh/authorized_keys", authorized); err != nil {
			return u.fail(ctx, "authorize the rack's key", n, err)
		}
		if err := exec.Run(n.Command(ctx, "sh", "-c", "chmod 700 /root/.ssh && chmod 600 /root/.ssh/authorized_keys && systemctl enable --now ssh")); err != nil {
			return u.fail(ctx, "start sshd", n, err)
		}
		hk, err := exec.Output(n.Command(ctx, "cat", "/etc/ssh/ssh_host_ed25519_key.pub"))
		if err != nil {
			return u.fail(ctx, "read the host key", n, err)
		}
		key, _, _, _, err := ssh.ParseAuthorizedKey(hk)
		if err != nil {
			return u.fail(ctx, "parse the host key", n, err)
		}
		for i, m := range u.all() {
			if m == n {
				lines[i] = knownhosts.Line([]string{n.addr.String(), n.name}, key)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	khPath := filepath.Join(dir, "known_hosts")
	u.knownHosts = strings.Join(lines, "\n") + "\n"
	if err := os.WriteFile(khPath, []byte(u.knownHosts), 0o644); err != nil {
		return err
	}
	check, err := knownhosts.New(khPath)
	if err != nil {
		return err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return err
	}
	return u.each(u.all(), func(n *node) error {
		out, err := sshRun(ctx, n.addr.String(), signer, check, "hostname", u.p.limit(IntervalSSH))
		if err != nil {
			return u.fail(ctx, "check SSH against known_hosts", n, err)
		}
		if strings.TrimSpace(out) != n.name {
			return &UpError{Step: "check SSH", Node: n.name, Err: fmt.Errorf("%s answers as %q", n.addr, strings.TrimSpace(out))}
		}
		return nil
	})
}

// sshRun runs cmd on addr:22 as root, the host key checked by check.
func sshRun(ctx context.Context, addr string, signer ssh.Signer, check ssh.HostKeyCallback, cmd string, limit time.Duration) (string, error) {
	// known_hosts holds the machines' ed25519 keys: ask for that kind, or the
	// server may offer another it also has and the check would fail.
	cfg := &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: check,
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519}, Timeout: 10 * time.Second}
	var c *ssh.Client
	var permanent error
	err := Poll(ctx, limit, func() error {
		if permanent != nil {
			return nil
		}
		conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", net.JoinHostPort(addr, "22"))
		if err != nil {
			return err
		}
		cc, chans, reqs, err := ssh.NewClientConn(conn, net.JoinHostPort(addr, "22"), cfg)
		if err != nil {
			conn.Close()
			// A host key that does not match is an answer, not a delay.
			var ke *knownhosts.KeyError
			if errors.As(err, &ke) {
				permanent = err
				return nil
			}
			return err
		}
		c = ssh.NewClient(cc, chans, reqs)
		return nil
	})
	if err == nil {
		err = permanent
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.Output(cmd)
	return string(out), err
}
