package scenarios

// How a drill waits for the rack: every probe green for the settle window,
// every workload ready before the fault, and the probes' live states.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/poll"
	"rackdrill.dev/rackdrill/harness/probe"
	"rackdrill.dev/rackdrill/harness/rackstate"
)

// waitGreen waits until every probe has been green for settle, with a sample
// taken after after (the revert: a slow probe must have looked again), for at
// most limit; it returns when that state began.
func waitGreen(ctx context.Context, s *probe.Sampler, probes []string, settle, limit time.Duration, after time.Time) (time.Time, error) {
	var since time.Time
	var tl probe.Timelines
	err := poll.Until(ctx, 100*time.Millisecond, limit, func() (bool, error) {
		tl = s.Snapshot()
		since = tl.GreenSince(probes)
		if !since.IsZero() && since.Before(after) {
			since = after // the settle window after the revert counts from it
		}
		return !since.IsZero() && time.Since(since) >= settle && sampledAfter(tl, probes, after) &&
			(settle == 0 || answeredSince(tl, probes, since, matrix.MinSettleSamples)), nil
	})
	if errors.Is(err, poll.ErrLimit) {
		return time.Time{}, fmt.Errorf("not every probe green for %s within %s: %s", settle, limit, failing(tl, probes))
	}
	if err != nil {
		return time.Time{}, err
	}
	return since, nil
}

// failing says which probes are failing now, and why.
func failing(tl probe.Timelines, probes []string) string {
	var out []string
	for _, p := range probes {
		rs := tl[p]
		switch {
		case len(rs) == 0:
			out = append(out, p+": no sample yet")
		case !rs[len(rs)-1].OK:
			out = append(out, fmt.Sprintf("%s: %v", p, rs[len(rs)-1].Err))
		}
	}
	if len(out) == 0 {
		return "probes are green but not for long enough (flapping)"
	}
	return strings.Join(out, "; ")
}

// watchLive tells live each change of the probes' latest states.
func watchLive(ctx context.Context, s *probe.Sampler, live func(map[string]bool)) {
	var last string
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		states := map[string]bool{}
		var key strings.Builder
		for name, rs := range s.Snapshot() {
			if len(rs) > 0 {
				states[name] = rs[len(rs)-1].OK
			}
		}
		for _, name := range slices.Sorted(maps.Keys(states)) {
			fmt.Fprintf(&key, "%s=%v ", name, states[name])
		}
		if key.String() != last {
			last = key.String()
			live(states)
		}
	}
}

// sampledAfter reports whether every probe's last check began after t.
// answeredSince reports whether every probe answered at least n requests
// sent since t: a settle window of one slow probe's single answer proves
// little. A request sent before t (before the revert) is not counted, as
// the verdict does not count it (matrix's judgeRecovery).
func answeredSince(tl probe.Timelines, probes []string, t time.Time, n int) bool {
	for _, p := range probes {
		count := 0
		for _, r := range tl[p] {
			if !r.At.Add(-r.Took).Before(t) {
				count++
			}
		}
		if count < n {
			return false
		}
	}
	return true
}

func sampledAfter(tl probe.Timelines, probes []string, t time.Time) bool {
	for _, p := range probes {
		rs := tl[p]
		if len(rs) == 0 || !rs[len(rs)-1].At.Add(-rs[len(rs)-1].Took).After(t) {
			return false
		}
	}
	return true
}

// steadySnapshot reads the state the residue check compares with, once every
// Deployment and DaemonSet is fully ready: green probes do not mean that a
// DaemonSet pod restarted by the previous drill is ready again, and a
// snapshot taken before it is would make its recovery look like a residue.
func steadySnapshot(ctx context.Context, in ScenarioInput, log logr.Logger, limit time.Duration) (rackstate.Snapshot, error) {
	var s rackstate.Snapshot
	var unready []string
	err := poll.Until(ctx, 2*time.Second, limit, func() (bool, error) {
		var err error
		if s, err = in.Snapshot(ctx); err != nil {
			return false, fmt.Errorf("state of the rack: %w", err)
		}
		if unready = s.Unready(); len(unready) > 0 {
			log.Info("waiting for workloads to be ready before the fault", "unready", unready)
		}
		return len(unready) == 0, nil
	})
	if errors.Is(err, poll.ErrLimit) {
		return s, fmt.Errorf("workloads not ready after %s: %s", limit, strings.Join(unready, "; "))
	}
	return s, err
}
