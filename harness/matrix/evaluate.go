package matrix

import (
	"fmt"
	"time"
)

// Sample is one observation of one probe. It is the matrix's own copy of what a
// probe reports, so that this package stays pure data and can be fed recorded
// timelines (reports, tests) without the probes.
type Sample struct {
	At   time.Time     `json:"at"`
	OK   bool          `json:"ok"`
	Took time.Duration `json:"took"`
	Err  string        `json:"err,omitempty"`
}

// Window is when the fault was in place, and how long the harness watched after.
type Window struct {
	Inject time.Time `json:"inject"`
	Revert time.Time `json:"revert"`
	// End is when sampling stopped; recovery is judged on samples up to it.
	End time.Time `json:"end"`
}

// Verdict is how one promise fared.
type Verdict string

const (
	Held Verdict = "held"
	// Broken: the observation differs from the promise and no deviation excuses it.
	Broken Verdict = "broken"
	// KnownDeviation: the observation differs from the promise in a way the
	// environment declares, with a reason.
	KnownDeviation Verdict = "deviation"
	NotApplicable  Verdict = "not-applicable"
)

// CellResult is the evaluation of one cell.
type CellResult struct {
	Fault   string  `json:"fault"`
	Probe   string  `json:"probe"`
	Promise Cell    `json:"promise"`
	Verdict Verdict `json:"verdict"`
	// Observed is what the probe did while the fault was in place: up (never
	// down longer than the cell allows an up blip), down, or flapping.
	Observed string `json:"observed"`
	// TimeToImpact is from the injection to the first failed sample; nil if the
	// probe never failed while the fault was in place.
	TimeToImpact *time.Duration `json:"timeToImpact,omitempty"`
	// LongestOutage is the longest run of failed samples during the fault.
	LongestOutage time.Duration `json:"longestOutage"`
	// TimeToRecovery is from the revert until the probe was up for good; nil if
	// it never recovered in the samples taken.
	TimeToRecovery *time.Duration `json:"timeToRecovery,omitempty"`
	Recovered      bool           `json:"recovered"`
	// Why says, in one sentence, what decided the verdict.
	Why string `json:"why"`
	// Reason is the declared deviation's reason when the verdict is KnownDeviation.
	Reason string `json:"reason,omitempty"`
}

// Evaluate judges one cell against a probe's timeline. recovery is the row's
// recovery budget. Samples need not be sorted by the caller but must be of one
// probe.
func Evaluate(fault, probe string, c Cell, samples []Sample, w Window, recovery time.Duration) CellResult {
	res := CellResult{Fault: fault, Probe: probe, Promise: c}
	var during, after []Sample
	for _, s := range samples {
		switch {
		case s.At.Before(w.Inject):
		case s.At.Before(w.Revert):
			during = append(during, s)
		case !s.At.After(w.End):
			after = append(after, s)
		}
	}
	duringOK, why := judgeDuring(&res, c, during, w)
	recOK, recWhy := judgeRecovery(&res, after, w, recovery)
	switch {
	case duringOK && recOK:
		res.Verdict = Held
		res.Why = why + "; " + recWhy
	case !duringOK && !recOK:
		res.Verdict = Broken
		res.Why = why + "; " + recWhy
	case !duringOK:
		res.Verdict = Broken
		res.Why = why
	default:
		res.Verdict = Broken
		res.Why = recWhy
	}
	return res
}

// outage is a run of failed samples: from the first failed sample to the next
// good one (or to the end of the window if none came).
type outage struct{ from, to time.Time }

func outages(samples []Sample, end time.Time) []outage {
	var out []outage
	var cur *outage
	for _, s := range samples {
		switch {
		case !s.OK && cur == nil:
			cur = &outage{from: s.At}
		case s.OK && cur != nil:
			cur.to = s.At
			out = append(out, *cur)
			cur = nil
		}
	}
	if cur != nil {
		cur.to = end
		out = append(out, *cur)
	}
	return out
}

func judgeDuring(res *CellResult, c Cell, during []Sample, w Window) (bool, string) {
	if len(during) == 0 {
		res.Observed = "unobserved"
		return false, "no sample was taken while the fault was in place"
	}
	outs := outages(during, w.Revert)
	var longest outage
	for _, o := range outs {
		if o.to.Sub(o.from) > longest.to.Sub(longest.from) {
			longest = o
		}
	}
	res.LongestOutage = longest.to.Sub(longest.from)
	if len(outs) > 0 {
		tti := outs[0].from.Sub(w.Inject)
		res.TimeToImpact = &tti
	}
	failed := 0
	for _, s := range during {
		if !s.OK {
			failed++
		}
	}
	// "Down" means down from the first failure to the revert; anything else that
	// failed for longer than an allowed blip is "flapping".
	firstFail := -1
	for i, s := range during {
		if !s.OK {
			firstFail = i
			break
		}
	}
	stayedDown := firstFail >= 0
	var backUp time.Time
	for _, s := range during[max(firstFail, 0):] {
		if s.OK && stayedDown {
			stayedDown = false
			backUp = s.At
		}
	}
	switch {
	case len(outs) == 0:
		res.Observed = "up"
	case c.During == Up && res.LongestOutage <= c.Within.Duration:
		res.Observed = "up" // blips within the budget
	case stayedDown:
		res.Observed = "down"
	default:
		res.Observed = "flapping"
	}
	rel := func(t time.Time) string { return "+" + t.Sub(w.Inject).Round(10*time.Millisecond).String() }
	switch c.During {
	case Any:
		return true, fmt.Sprintf("no promise while the fault is in place (%d of %d samples failed)", failed, len(during))
	case Up:
		if len(outs) == 0 {
			return true, fmt.Sprintf("stayed up (%d samples, none failed)", len(during))
		}
		if res.LongestOutage <= c.Within.Duration {
			return true, fmt.Sprintf("stayed up: longest blip %s within the %s budget (%d of %d samples failed)",
				res.LongestOutage.Round(time.Millisecond), c.Within.Duration, failed, len(during))
		}
		return false, fmt.Sprintf("promised up, but was down for %s from %s to %s, over the %s budget",
			res.LongestOutage.Round(time.Millisecond), rel(longest.from), rel(longest.to), c.Within.Duration)
	case Down:
		if len(outs) == 0 {
			return false, fmt.Sprintf("promised down, but stayed up for the whole fault (%d samples, none failed)", len(during))
		}
		tti := *res.TimeToImpact
		if tti > c.Within.Duration {
			return false, fmt.Sprintf("promised down within %s, but went down only after %s", c.Within.Duration, tti.Round(time.Millisecond))
		}
		if !stayedDown {
			return false, fmt.Sprintf("went down after %s but came back up at %s while the fault was in place",
				tti.Round(time.Millisecond), rel(backUp))
		}
		return true, fmt.Sprintf("went down after %s (budget %s) and stayed down until the revert", tti.Round(time.Millisecond), c.Within.Duration)
	}
	return false, fmt.Sprintf("unknown expectation %q", c.During)
}

func judgeRecovery(res *CellResult, after []Sample, w Window, budget time.Duration) (bool, string) {
	if len(after) == 0 {
		return false, "no sample was taken after the revert"
	}
	last := after[len(after)-1]
	if !last.OK {
		return false, fmt.Sprintf("not recovered: still failing %s after the revert (budget %s): %s",
			last.At.Sub(w.Revert).Round(time.Millisecond), budget, last.Err)
	}
	// Recovered at the first sample after the last failure: up for good from there.
	recAt := after[0].At
	for i := len(after) - 1; i >= 0; i-- {
		if !after[i].OK {
			recAt = after[i+1].At
			break
		}
	}
	ttr := recAt.Sub(w.Revert)
	if ttr < 0 {
		ttr = 0
	}
	res.TimeToRecovery = &ttr
	res.Recovered = true
	if ttr > budget {
		return false, fmt.Sprintf("recovered only after %s, over the %s recovery budget", ttr.Round(time.Millisecond), budget)
	}
	return true, fmt.Sprintf("recovered %s after the revert (budget %s)", ttr.Round(time.Millisecond), budget)
}
