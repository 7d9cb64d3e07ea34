// Package fault owns injecting faults so that they are always undone.
//
// A fault is reverted in layers: the caller registers the revert before it
// injects (ginkgo DeferCleanup in scenarios); Guard.Hold reverts on return,
// failure, panic, timeout, SIGINT and SIGTERM; and the Ledger records each fault
// on disk, fsync'd, before it is injected and clears it after a successful
// revert, so that `rackdrill recover` (Recover) undoes what a SIGKILL'd run left.
// On a real rack each machine a fault touches also gets a dead-man timer
// (Remote: a systemd timer armed before the first step), which runs the
// machine's reverts by itself if rackdrill stops re-arming it.
//
// Every injected fault is Recordable: its kind and parameters are enough for a
// registered Rebuilder to rebuild it in another process.
package fault
