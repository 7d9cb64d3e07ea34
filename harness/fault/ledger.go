package fault

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Entry is one live fault as the ledger keeps it: enough to revert it from
// another process after the one that injected it died.
type Entry struct {
	ID    string `json:"id"`
	Fault string `json:"fault"` // the fault's name, e.g. the matrix row "nfs-lost"
	// Kind names the registered Rebuilder that turns Params back into a Fault.
	Kind     string          `json:"kind"`
	Params   json.RawMessage `json:"params"`
	Rack     string          `json:"rack"`
	Provider string          `json:"provider"`
	// Topology is the file of the rack (the ssh provider reaches the machines
	// through its inventory again to recover).
	Topology   string    `json:"topology,omitempty"`
	InjectedAt time.Time `json:"injectedAt"`
	PID        int       `json:"pid"`
	Host       string    `json:"host"`
}

// Ledger is the on-disk journal of live faults: one JSON file per fault in a
// folder, written and fsync'd before the fault is injected, removed after it was
// reverted. A file here means a fault may still be in place.
type Ledger struct{ dir string }

// OpenLedger opens the ledger folder dir; the folder is created by the first
// Record, so that a run that injects nothing (a dry run, conformance) writes
// nothing.
func OpenLedger(dir string) (*Ledger, error) {
	if dir == "" {
		return nil, errors.New("open fault ledger: no folder")
	}
	return &Ledger{dir: dir}, nil
}

// Dir is the ledger's folder.
func (l *Ledger) Dir() string { return l.dir }

// newID is unique enough for one machine's journal and sorts by time.
func newID(fault string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%s-%s", time.Now().UTC().Format("20060102T150405.000"), fault, hex.EncodeToString(b[:]))
}

// Record writes e durably: temp file, fsync, rename, fsync of the folder, so that
// after a crash the entry is either whole or absent.
func (l *Ledger) Record(e Entry) error {
	data, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return fmt.Errorf("record fault %s: %w", e.Fault, err)
	}
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return fmt.Errorf("record fault %s: %w", e.Fault, err)
	}
	final := filepath.Join(l.dir, e.ID+".json")
	tmp, err := os.CreateTemp(l.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("record fault %s: %w", e.Fault, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("record fault %s: %w", e.Fault, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("record fault %s: fsync: %w", e.Fault, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("record fault %s: %w", e.Fault, err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fmt.Errorf("record fault %s: %w", e.Fault, err)
	}
	return l.syncDir()
}

// Clear removes the entry of a reverted fault. Clearing an absent entry is fine.
func (l *Ledger) Clear(id string) error {
	if err := os.Remove(filepath.Join(l.dir, id+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("clear fault %s from the ledger: %w", id, err)
	}
	return l.syncDir()
}

func (l *Ledger) syncDir() error {
	d, err := os.Open(l.dir)
	if err != nil {
		return fmt.Errorf("fsync ledger folder: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync ledger folder: %w", err)
	}
	return nil
}

// Entries lists the live faults, oldest first. An unreadable entry is an error
// naming its file: it is never skipped silently, since it may be a fault in place.
func (l *Ledger) Entries() ([]Entry, error) {
	des, err := os.ReadDir(l.dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("read fault ledger: %w", err)
	}
	var out []Entry
	var errs []error
	for _, de := range des {
		if de.IsDir() || !strings.HasSuffix(de.Name(), ".json") {
			continue
		}
		path := filepath.Join(l.dir, de.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var e Entry
		if err := json.Unmarshal(data, &e); err != nil {
			errs = append(errs, fmt.Errorf("%s: not a ledger entry: %w", path, err))
			continue
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, errors.Join(errs...)
}
