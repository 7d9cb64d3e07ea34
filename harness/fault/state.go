package fault

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// StateEnv overrides where rackdrill keeps its state (tests, CI, a shared
// machine where several operators drill one rack).
const StateEnv = "RACKDRILL_STATE_DIR"

// StateDir is where rackdrill keeps what must outlive a run, whatever
// directory it was started from: $RACKDRILL_STATE_DIR, else
// $XDG_STATE_HOME/rackdrill, else ~/.local/state/rackdrill (the XDG base
// directory rule for state). It is not created here.
func StateDir() (string, error) {
	if d := os.Getenv(StateEnv); d != "" {
		return filepath.Abs(d)
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "rackdrill"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("where to keep the fault ledger: no $%s, $XDG_STATE_HOME or home folder: %w", StateEnv, err)
	}
	return filepath.Join(home, ".local", "state", "rackdrill"), nil
}

// RackDir is the state folder of one rack: its fault ledger (ledger/) and the
// steady state its current drill kept for recover.
func RackDir(rack string) (string, error) {
	if rack == "" || rack != filepath.Base(rack) || rack == "." || rack == ".." {
		return "", fmt.Errorf("rack name %q cannot name a state folder", rack)
	}
	d, err := StateDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "racks", rack), nil
}

// LedgerFor opens the fault ledger of rack in the state folder. Nothing is
// created until a fault is recorded.
func LedgerFor(rack string) (*Ledger, error) {
	d, err := RackDir(rack)
	if err != nil {
		return nil, err
	}
	return OpenLedger(filepath.Join(d, "ledger"))
}

// KnownRacks lists the racks that have a state folder, sorted, and the folder
// they were looked for in.
func KnownRacks() ([]string, string, error) {
	d, err := StateDir()
	if err != nil {
		return nil, "", err
	}
	root := filepath.Join(d, "racks")
	des, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, root, nil
	}
	if err != nil {
		return nil, root, fmt.Errorf("read the state folder: %w", err)
	}
	var out []string
	for _, de := range des {
		if de.IsDir() {
			out = append(out, de.Name())
		}
	}
	sort.Strings(out)
	return out, root, nil
}
