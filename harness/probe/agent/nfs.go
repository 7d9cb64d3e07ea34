package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/willscott/go-nfs-client/nfs"
	"github.com/willscott/go-nfs-client/nfs/rpc"
)

// NFSStore is a Store on an NFS export, spoken from user space (NFSv3 through
// rpcbind and mountd): the lab's kernel has no NFS client, so its pods cannot
// mount a volume, but they can still keep their data on the NAS. Each operation
// mounts afresh, so that a NAS that comes back is used again without state.
type NFSStore struct {
	Server string // host of rpcbind, mountd and nfsd
	Export string // exported path
}

// Write implements Store.
func (s NFSStore) Write(ctx context.Context, name string, data []byte) error {
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
func (s NFSStore) Read(ctx context.Context, name string) ([]byte, error) {
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

// do mounts the export, runs fn and unmounts, bounded by ctx: the library takes
// no context, so a call stuck on a lost server is abandoned at the deadline.
func (s NFSStore) do(ctx context.Context, fn func(*nfs.Target) error) error {
	done := make(chan error, 1)
	go func() {
		m, err := nfs.DialMount(s.Server, time.Second)
		if err != nil {
			done <- fmt.Errorf("nfs %s: %w", s.Server, err)
			return
		}
		defer m.Close()
		host, _ := os.Hostname()
		t, err := m.Mount(s.Export, rpc.NewAuthUnix(host, 0, 0).Auth())
		if err != nil {
			done <- fmt.Errorf("mount %s:%s: %w", s.Server, s.Export, err)
			return
		}
		defer func() { _ = m.Unmount() }()
		done <- fn(t)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("nfs %s:%s: %w", s.Server, s.Export, ctx.Err())
	}
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
