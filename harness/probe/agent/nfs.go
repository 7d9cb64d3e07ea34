package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/willscott/go-nfs-client/nfs"
	"github.com/willscott/go-nfs-client/nfs/rpc"
)

// NFSStore is a Store on an NFS export, spoken from user space (NFSv3 through
// rpcbind and mountd): the lab's kernel has no NFS client, so its pods cannot
// mount a volume, but they can still keep their data on the NAS.
//
// One mount serves every operation (a mount per operation exhausts the
// reserved source ports NFS clients use); it is dropped after any error or
// timeout, so that a NAS that comes back is mounted afresh.
type NFSStore struct {
	Server string // host of rpcbind, mountd and nfsd
	Export string // exported path

	mu    sync.Mutex
	mount *nfs.Mount
	tgt   *nfs.Target
}

// Write implements Store.
func (s *NFSStore) Write(ctx context.Context, name string, data []byte) error {
	return s.do(ctx, func(t *nfs.Target) error {
		p := path.Clean("/" + name)
		if err := mkdirAll(t, path.Dir(p)); err != nil {
			return err
		}
		f, err := t.OpenFile(p, 0o644)
		if err != nil {
			return fmt.Errorf("open %s: %w", p, err)
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", p, err)
		}
		// Close commits the write to stable storage on the server.
		return f.Close()
	})
}

// Read implements Store.
func (s *NFSStore) Read(ctx context.Context, name string) ([]byte, error) {
	var out []byte
	err := s.do(ctx, func(t *nfs.Target) error {
		f, err := t.Open(path.Clean("/" + name))
		if err != nil {
			return err
		}
		defer f.Close()
		out, err = io.ReadAll(f)
		return err
	})
	return out, err
}

// do runs fn on the mount, mounting first if needed, bounded by ctx: the
// library takes no context, so a call stuck on a lost server is abandoned at
// the deadline and its mount dropped.
func (s *NFSStore) do(ctx context.Context, fn func(*nfs.Target) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	type result struct {
		m   *nfs.Mount
		t   *nfs.Target
		err error
	}
	m, t := s.mount, s.tgt
	done := make(chan result, 1)
	go func() {
		if t == nil {
			var err error
			if m, t, err = s.dial(); err != nil {
				done <- result{err: err}
				return
			}
		}
		done <- result{m: m, t: t, err: fn(t)}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			s.drop(r.m)
			return r.err
		}
		s.mount, s.tgt = r.m, r.t
		return nil
	case <-ctx.Done():
		s.drop(m)
		return fmt.Errorf("nfs %s:%s: %w", s.Server, s.Export, ctx.Err())
	}
}

// dialMount is nfs.DialMount; a test stands in for it.
var dialMount = nfs.DialMount

// dialAttempts bounds the dials of one mount.
const dialAttempts = 3

// dial mounts the export. The library binds each connection to a random
// source port (49152-65535) and, unlike for reserved ports, does not pick
// another when that one is taken (a connection of an earlier mount still in
// TIME_WAIT): the mount is tried again, up to dialAttempts times.
func (s *NFSStore) dial() (*nfs.Mount, *nfs.Target, error) {
	for attempt := 1; ; attempt++ {
		m, t, err := s.dialOnce()
		if err == nil || attempt == dialAttempts || !errors.Is(err, syscall.EADDRINUSE) {
			return m, t, err
		}
	}
}

func (s *NFSStore) dialOnce() (*nfs.Mount, *nfs.Target, error) {
	m, err := dialMount(s.Server, time.Second)
	if err != nil {
		return nil, nil, fmt.Errorf("nfs %s: %w", s.Server, err)
	}
	host, _ := os.Hostname()
	t, err := m.Mount(s.Export, rpc.NewAuthUnix(host, 0, 0).Auth())
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("mount %s:%s: %w", s.Server, s.Export, err)
	}
	return m, t, nil
}

// drop forgets the mount; the next operation mounts afresh.
func (s *NFSStore) drop(m *nfs.Mount) {
	if m != nil {
		go func() { _ = m.Unmount(); m.Close() }()
	}
	s.mount, s.tgt = nil, nil
}

func mkdirAll(t *nfs.Target, dir string) error {
	if dir == "/" || dir == "." {
		return nil
	}
	if _, _, err := t.Lookup(dir); err == nil {
		return nil
	}
	if err := mkdirAll(t, path.Dir(dir)); err != nil {
		return err
	}
	if _, err := t.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) && !strings.Contains(err.Error(), "exist") {
		return fmt.Errorf("mkdir %s: %w", dir, err)
	}
	return nil
}
