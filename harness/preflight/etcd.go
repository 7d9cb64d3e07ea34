package preflight

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/rackstate"
	"rackdrill.dev/rackdrill/harness/topology"
)

// Snapshot is an etcd snapshot saved into the artifacts folder.
type Snapshot struct {
	Path   string         `json:"path"`
	Node   string         `json:"node"`
	Size   int64          `json:"size"`
	SHA256 string         `json:"sha256"`
	Status SnapshotStatus `json:"status"`
	Taken  time.Time      `json:"taken"`
}

// SnapshotStatus is what `etcdutl snapshot status -w json` says of a file.
type SnapshotStatus struct {
	Hash      uint32 `json:"hash"`
	Revision  int64  `json:"revision"`
	TotalKey  int    `json:"totalKey"`
	TotalSize int64  `json:"totalSize"`
	Version   string `json:"version,omitempty"`
}

// EtcdSnapshot saves a snapshot of etcd on the first running server
// (`etcdctl snapshot save`, which checks the stream's integrity hash), copies
// it into dir, checks the copy against the server's checksum, removes it from
// the server, and verifies the copy with etcdutl (`snapshot status`).
func EtcdSnapshot(ctx context.Context, nodes []cluster.Node, dir, etcdutl string) (Snapshot, error) {
	var server cluster.Node
	for _, n := range nodes {
		if !slices.Contains(n.Roles(), topology.RoleServer) {
			continue
		}
		if up, err := n.Running(ctx); err == nil && up {
			server = n
			break
		}
	}
	if server == nil {
		return Snapshot{}, fmt.Errorf("etcd snapshot: no server is running")
	}
	taken := time.Now().UTC()
	remote := fmt.Sprintf("/tmp/rackdrill-etcd-snapshot-%d.db", taken.UnixNano())
	defer func() {
		// Best effort, with its own bound: the snapshot holds every secret of the rack.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = exec.Run(server.Command(cctx, "rm", "-f", remote, remote+".part"))
	}()
	save := rackstate.Etcdctl("snapshot", "save", remote)
	if err := exec.Run(server.Command(ctx, save[0], save[1:]...)); err != nil {
		return Snapshot{}, fmt.Errorf("etcd snapshot on %s: %w", server.Name(), err)
	}
	sum, err := exec.Output(server.Command(ctx, "sha256sum", remote))
	if err != nil {
		return Snapshot{}, fmt.Errorf("checksum of the snapshot on %s: %w", server.Name(), err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Snapshot{}, err
	}
	local := filepath.Join(dir, fmt.Sprintf("etcd-snapshot-%s-%s.db", server.Name(), taken.Format("20060102T150405Z")))
	f, err := os.OpenFile(local, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return Snapshot{}, err
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	// exec.Run would keep stdout for its error: the file goes straight to disk.
	var stderr strings.Builder
	err = server.Command(ctx, "cat", remote).SetStdout(cw).SetStderr(&stderr).Run()
	if err != nil && stderr.Len() > 0 {
		err = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(local)
		return Snapshot{}, fmt.Errorf("copy the snapshot from %s: %w", server.Name(), err)
	}
	s := Snapshot{Path: local, Node: server.Name(), Size: cw.n, SHA256: hex.EncodeToString(h.Sum(nil)), Taken: taken}
	if want := strings.Fields(string(sum)); len(want) == 0 || want[0] != s.SHA256 {
		_ = os.Remove(local) // a snapshot that is not the server's must not look like a backup
		return s, fmt.Errorf("the copy of the snapshot differs from the file on %s (sha256 %s, copy %s)", server.Name(), strings.Join(want, " "), s.SHA256)
	}
	out, err := exec.Output(exec.Local{}.Command(ctx, etcdutl, "snapshot", "status", local, "-w", "json"))
	if err != nil {
		return s, fmt.Errorf("verify the snapshot: %w", err)
	}
	if err := json.Unmarshal(out, &s.Status); err != nil {
		return s, fmt.Errorf("etcdutl snapshot status: %w (%s)", err, out)
	}
	if s.Status.TotalKey == 0 || s.Status.Revision == 0 {
		return s, fmt.Errorf("the snapshot %s holds no keys (revision %d)", local, s.Status.Revision)
	}
	meta, _ := json.MarshalIndent(s, "", "  ")
	return s, os.WriteFile(local+".json", meta, 0o644)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
