package matrix

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Sample is one observation of one probe. It is the matrix's own copy of what a
// probe reports, so that this package stays pure data and can be fed recorded
// timelines (reports, tests) without the probes.
//
// At is when the answer came (or the request was given up); Took is how long
// the request was in flight, so it was sent at At-Took. A request that hung
// 2 s to its timeout is 2 s of outage, not one point.
type Sample struct {
	At   time.Time     `json:"at"`
	OK   bool          `json:"ok"`
	Took time.Duration `json:"took"`
	Err  string        `json:"err,omitempty"`
}

// Sent is when the sample's request was sent.
func (s Sample) Sent() time.Time { return s.At.Add(-s.Took) }

// Window is when the fault was in place, and how long the harness watched after.
type Window struct {
	Inject time.Time `json:"inject"`
	// InPlace is when the injection's last step was done (a fault of several
	// steps, two servers or two balancers one after the other, is only
	// partly in place before). Zero: at Inject.
	InPlace time.Time `json:"inPlace,omitempty"`
	Revert  time.Time `json:"revert"`
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
	// Errored: the drill itself failed (the rack was not steady, the
	// injection or the revert failed, the run was interrupted): its promises
	// were not judged, and the drill counts as failed.
	Errored Verdict = "error"
)

// CellResult is the evaluation of one cell.
type CellResult struct {
	Fault   string  `json:"fault"`
	Probe   string  `json:"probe"`
	Promise Cell    `json:"promise"`
	Verdict Verdict `json:"verdict"`
	// Observed is what the probe did while the fault was in place: up (never
	// down longer than the cell allows an up blip), down, flapping, or
	// unobserved (no evidence: no sample, or a gap in them).
	Observed string `json:"observed"`
	// TimeToImpact is from the injection to the sending of the first request
	// that failed; nil if the probe never failed while the fault was in place.
	TimeToImpact *time.Duration `json:"timeToImpact,omitempty"`
	// LongestOutage is the longest run of failed requests during the fault,
	// from the sending of the first to the sending of the next that succeeded.
	LongestOutage time.Duration `json:"longestOutage"`
	// TotalDown is the time the probe was down while the fault was in place:
	// its outages (from a failed request's sending to the sending of the next
	// that succeeded) and every failed request's whole flight, overlaps
	// counted once.
	TotalDown time.Duration `json:"totalDown"`
	// Failed and Samples count the requests judged while the fault was in place.
	Failed  int `json:"failed"`
	Samples int `json:"samples"`
	// LongestGap is the longest stretch of the fault window in which no
	// request of the probe was in flight or answered: a stalled sampler
	// proves nothing, and a gap longer than the probe's allowance fails the
	// cell as "no evidence".
	LongestGap time.Duration `json:"longestGap"`
	// BackAt is from the injection to the end of the probe's last outage
	// while the fault was in place (the sending of the next request that
	// succeeded); nil if it never failed, or was still failing at the
	// revert. A flapping deviation bounds it (Deviation.Until).
	BackAt *time.Duration `json:"backAt,omitempty"`
	// TimeToRecovery is from the revert until the probe was up for good; nil if
	// it never recovered in the samples taken.
	TimeToRecovery *time.Duration `json:"timeToRecovery,omitempty"`
	Recovered      bool           `json:"recovered"`
	// DuringHeld and RecoveryHeld say which half of the promise held: the
	// cell while the fault was in place, and the recovery within its budget.
	// A deviation may excuse only the first.
	DuringHeld   bool `json:"duringHeld"`
	RecoveryHeld bool `json:"recoveryHeld"`
	// Why says, in one sentence, what decided the verdict.
	Why string `json:"why"`
	// Reason is the declared deviation's reason when the verdict is KnownDeviation.
	Reason string `json:"reason,omitempty"`
	// Excused counts the failed requests the cell's exception excused (each
	// in flight during one of ExcusedBy, spans the run observed); they are
	// not in Failed, TotalDown or the outages.
	Excused   int        `json:"excused,omitempty"`
	ExcusedBy []Interval `json:"excusedBy,omitempty"`
	// ExcusedTime is how long the excused requests were in flight inside
	// the fault window, overlaps counted once.
	ExcusedTime time.Duration `json:"excusedTime,omitempty"`
}

// Evaluate judges one cell against a probe's timeline. recovery is the row's
// recovery budget; maxGap is the longest time the probe may go without a
// request in flight and still count as watched (its sampling interval and
// some slack). Samples need not be sorted by the caller but must be of one
// probe.
//
// The recovery counts only once the probe stayed green for settle with at
// least MinSettleSamples answers (DefaultRecoverySettle when settle is 0).
func Evaluate(fault, probe string, c Cell, samples []Sample, w Window, recovery, maxGap time.Duration) CellResult {
	return evaluate(fault, probe, c, samples, w, recovery, 0, maxGap, nil)
}

// EvaluateSettled is Evaluate with the recovery's settle window.
func EvaluateSettled(fault, probe string, c Cell, samples []Sample, w Window, recovery, settle, maxGap time.Duration) CellResult {
	return evaluate(fault, probe, c, samples, w, recovery, settle, maxGap, nil)
}

// evaluate is Evaluate with the settle window and the spans the cell's
// exception excuses.
func evaluate(fault, probe string, c Cell, samples []Sample, w Window, recovery, settle, maxGap time.Duration, excused []Interval) CellResult {
	res := CellResult{Fault: fault, Probe: probe, Promise: c}
	samples = slices.Clone(samples)
	slices.SortStableFunc(samples, func(a, b Sample) int { return a.At.Compare(b.At) })
	var before, overlap, after []Sample
	for _, s := range samples {
		switch {
		case !s.At.After(w.Inject):
			before = append(before, s)
		case s.Sent().Before(w.Revert):
			overlap = append(overlap, s)
		case !s.At.After(w.End):
			after = append(after, s)
		}
	}
	duringOK, why := judgeDuring(&res, c, before, overlap, w, maxGap, excused)
	if res.Excused > 0 {
		var spans []string
		for _, iv := range res.ExcusedBy {
			spans = append(spans, fmt.Sprintf("%s from +%s to +%s", iv.What,
				iv.From.Sub(w.Inject).Round(100*time.Millisecond), iv.To.Sub(w.Inject).Round(100*time.Millisecond)))
		}
		why += fmt.Sprintf(" (not counted: %d failed requests, %s in flight, that failed while %s, the cell's exception %q)",
			res.Excused, res.ExcusedTime.Round(100*time.Millisecond), strings.Join(spans, "; "), c.Except)
	}
	if settle <= 0 {
		settle = DefaultRecoverySettle
	}
	recOK, recWhy := judgeRecovery(&res, overlap, after, w, recovery, settle)
	res.DuringHeld, res.RecoveryHeld = duringOK, recOK
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

// clip is the part of [from, to] inside the fault window.
func clip(from, to time.Time, w Window) (time.Time, time.Time) {
	if from.Before(w.Inject) {
		from = w.Inject
	}
	if to.After(w.Revert) {
		to = w.Revert
	}
	if to.Before(from) {
		to = from
	}
	return from, to
}

// outage is a run of failed requests: from the sending of the first to the
// sending of the next that succeeded (or the revert if none did).
type outage struct{ from, to time.Time }

func outages(during []Sample, w Window) []outage {
	var out []outage
	var cur *outage
	for _, s := range during {
		switch {
		case !s.OK && cur == nil:
			cur = &outage{from: s.Sent()}
		case s.OK && cur != nil:
			cur.to = s.Sent()
			out = append(out, *cur)
			cur = nil
		}
	}
	if cur != nil {
		cur.to = w.Revert
		out = append(out, *cur)
	}
	for i := range out {
		out[i].from, out[i].to = clip(out[i].from, out[i].to, w)
	}
	return out
}

// timeDown is how long the probe was down while the fault was in place: the
// union of its outages (each from a failed request's sending to the sending of
// the next that succeeded) and every failed request's own flight. A request
// refused in a millisecond says the path was down until one succeeded again,
// not for that millisecond alone.
func timeDown(during []Sample, outs []outage, w Window) time.Duration {
	spans := slices.Clone(outs)
	for _, s := range during {
		if !s.OK {
			from, to := clip(s.Sent(), s.At, w)
			spans = append(spans, outage{from: from, to: to})
		}
	}
	return union(spans)
}

// union is the time the spans cover, overlaps counted once.
func union(spans []outage) time.Duration {
	spans = slices.Clone(spans)
	slices.SortFunc(spans, func(a, b outage) int { return a.from.Compare(b.from) })
	var total time.Duration
	var end time.Time
	for _, o := range spans {
		if o.from.After(end) {
			end = o.from
		}
		if o.to.After(end) {
			total += o.to.Sub(end)
			end = o.to
		}
	}
	return total
}

// flightTime is the union of the samples' flights inside the window.
func flightTime(ss []Sample, w Window) time.Duration {
	var spans []outage
	for _, s := range ss {
		from, to := clip(s.Sent(), s.At, w)
		spans = append(spans, outage{from: from, to: to})
	}
	return union(spans)
}

// longestGap is the longest stretch of the fault window with no request of
// the probe in flight, and where it began.
func longestGap(overlap []Sample, w Window) (time.Duration, time.Time) {
	var gap time.Duration
	var at time.Time
	cursor := w.Inject
	consider := func(until time.Time) {
		if d := until.Sub(cursor); d > gap {
			gap, at = d, cursor
		}
	}
	for _, s := range overlap {
		consider(s.Sent())
		if s.At.After(cursor) {
			cursor = s.At
		}
	}
	consider(w.Revert)
	return gap, at
}

// excusedBy is the span of excused in which the request of s failed: its
// answer (or its giving up) came inside an observed span. A request that
// merely touched one (sent before it began, failing long after it ended)
// is not excused: what failed it was not the move.
func excusedBy(s Sample, excused []Interval) (Interval, bool) {
	for _, iv := range excused {
		if !s.At.Before(iv.From) && !s.At.After(iv.To) {
			return iv, true
		}
	}
	return Interval{}, false
}

func judgeDuring(res *CellResult, c Cell, before, overlap []Sample, w Window, maxGap time.Duration, excused []Interval) (bool, string) {
	rel := func(t time.Time) string { return "+" + t.Sub(w.Inject).Round(10*time.Millisecond).String() }
	// What the probe said while the fault was in place: every request in
	// flight during the window, but an answer that succeeded only after the
	// revert says nothing about the fault. An up cell's answer slower than
	// the cell's budget is a failure for that long (a 29 s heal is not "up
	// within 10 s").
	var during, excusedSamples []Sample
	slow := 0
	for _, s := range overlap {
		if s.OK && !s.At.Before(w.Revert) {
			continue
		}
		tooSlow := s.OK && c.During == Up && c.Within.Duration > 0 && s.Took > c.Within.Duration
		if tooSlow {
			s.OK, s.Err = false, fmt.Sprintf("answered only after %s, over the %s budget", s.Took.Round(time.Millisecond), c.Within.Duration)
		}
		if iv, ok := excusedBy(s, excused); ok && !s.OK {
			// Not counted, but it was in flight: the gap check below still
			// sees it as evidence that the probe was watching.
			res.Excused++
			excusedSamples = append(excusedSamples, s)
			if !slices.Contains(res.ExcusedBy, iv) {
				res.ExcusedBy = append(res.ExcusedBy, iv)
			}
			continue
		}
		if tooSlow {
			slow++
		}
		during = append(during, s)
	}
	res.ExcusedTime = flightTime(excusedSamples, w)
	if len(during) == 0 {
		res.Observed = "unobserved"
		return false, "no sample was taken while the fault was in place"
	}
	outs := outages(during, w)
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
		if !downAtRevert(overlap, w) {
			back := outs[len(outs)-1].to.Sub(w.Inject)
			res.BackAt = &back
		}
	}
	res.Samples = len(during)
	for _, s := range during {
		if !s.OK {
			res.Failed++
		}
	}
	res.TotalDown = timeDown(during, outs, w)
	gap, gapAt := longestGap(overlap, w)
	res.LongestGap = gap
	// "Down" means down from the first failure to the revert; anything else that
	// failed for longer than an allowed blip is "flapping". An answer to a
	// request sent while the injection was still under way (the second
	// server not yet killed) is no sign the path came back.
	firstFail := slices.IndexFunc(during, func(s Sample) bool { return !s.OK })
	stayedDown := firstFail >= 0
	var backUp time.Time
	if stayedDown {
		if i := slices.IndexFunc(during[firstFail:], func(s Sample) bool { return s.OK && !s.At.Before(w.InPlace) }); i >= 0 {
			stayedDown, backUp = false, during[firstFail+i].At
		}
	}
	// Honoured as written: a downtime below within binds first. A cell
	// built without the matrix's defaults (no downtime) bounds the total by
	// its within alone.
	downtime := c.Downtime.Duration
	if downtime <= 0 {
		downtime = c.Within.Duration
	}
	withinUp := c.During == Up && res.LongestOutage <= c.Within.Duration && res.TotalDown <= downtime
	switch {
	case gap > maxGap:
		res.Observed = "unobserved"
	case len(outs) == 0:
		res.Observed = "up"
	case withinUp:
		res.Observed = "up" // blips within the budgets
	case stayedDown:
		res.Observed = "down"
	default:
		res.Observed = "flapping"
	}
	if gap > maxGap {
		return false, fmt.Sprintf("no evidence: no request of the probe for %s from %s (the sampler allows %s), so the fault's effect there is unknown",
			gap.Round(10*time.Millisecond), rel(gapAt), maxGap)
	}
	counted := fmt.Sprintf("%d of %d samples failed", res.Failed, res.Samples)
	if slow > 0 {
		counted += fmt.Sprintf(", %d of them by answering too slowly", slow)
	}
	switch c.During {
	case Any:
		return true, fmt.Sprintf("no promise while the fault is in place (%s)", counted)
	case Up:
		if len(outs) == 0 {
			return true, fmt.Sprintf("stayed up (%d samples, none failed)", len(during))
		}
		if res.LongestOutage > c.Within.Duration {
			why := fmt.Sprintf("promised up, but was down for %s from %s to %s, over the %s budget",
				res.LongestOutage.Round(time.Millisecond), rel(longest.from), rel(longest.to), c.Within.Duration)
			if slow > 0 {
				why += fmt.Sprintf(" (%s)", firstErr(during))
			}
			return false, why
		}
		if res.TotalDown > downtime {
			return false, fmt.Sprintf("promised up, but was down for %s in all while the fault was in place, over the %s budget (%s; longest blip %s)",
				res.TotalDown.Round(100*time.Millisecond), downtime, counted, res.LongestOutage.Round(time.Millisecond))
		}
		return true, fmt.Sprintf("stayed up: longest blip %s within the %s budget, %s down in all within %s (%s)",
			res.LongestOutage.Round(time.Millisecond), c.Within.Duration, res.TotalDown.Round(100*time.Millisecond), downtime, counted)
	case Down:
		// Only an outage the fault caused counts: the probe must have been
		// green, and recently, when the fault went in.
		if len(before) == 0 {
			return false, "was not green when the fault went in: no sample before the fault, so the outage cannot be credited to it"
		}
		last := before[len(before)-1]
		if !last.OK {
			return false, fmt.Sprintf("was not green when the fault went in (its last sample before, at %s, failed: %s): the outage cannot be credited to the fault",
				rel(last.At), last.Err)
		}
		if age := w.Inject.Sub(last.At); age > maxGap {
			return false, fmt.Sprintf("was not green when the fault went in: its last sample before the fault is %s old (the sampler allows %s)",
				age.Round(10*time.Millisecond), maxGap)
		}
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

// downAtRevert reports whether the probe's last word on the fault window was
// a failure.
func downAtRevert(overlap []Sample, w Window) bool {
	for i := len(overlap) - 1; i >= 0; i-- {
		if s := overlap[i]; !s.OK || s.At.Before(w.Revert) {
			return !s.OK
		}
	}
	return false
}

func firstErr(ss []Sample) string {
	for _, s := range ss {
		if !s.OK && s.Err != "" {
			return s.Err
		}
	}
	return ""
}

// judgeRecovery judges the requests sent after the revert: the last must
// have succeeded, and the probe up for good within the budget, counted from
// the revert to the first answer after the last failure; for good means
// green from there for the settle window, with MinSettleSamples answers.
func judgeRecovery(res *CellResult, overlap, after []Sample, w Window, budget, settle time.Duration) (bool, string) {
	if len(after) == 0 {
		return false, "no sample was taken after the revert"
	}
	last := after[len(after)-1]
	if !last.OK {
		return false, fmt.Sprintf("not recovered: still failing %s after the revert (budget %s): %s",
			last.At.Sub(w.Revert).Round(time.Millisecond), budget, last.Err)
	}
	var ttr time.Duration
	lastFail := -1
	for i := len(after) - 1; i >= 0; i-- {
		if !after[i].OK {
			lastFail = i
			break
		}
	}
	// Green for good: from the first answer after the last failure (or the
	// revert) to the end of sampling, the settle window with several
	// answers; a path that failed again inside it started its window anew.
	greenFrom := w.Revert
	if lastFail >= 0 {
		greenFrom = after[lastFail+1].At
	}
	if green, n := w.End.Sub(greenFrom), len(after)-lastFail-1; green < settle || n < MinSettleSamples {
		verb := "green"
		if lastFail >= 0 {
			verb = fmt.Sprintf("failed again %s after the revert, then green", after[lastFail].At.Sub(w.Revert).Round(100*time.Millisecond))
		}
		return false, fmt.Sprintf("not recovered for good: %s for only %s (%d answers) when sampling stopped, short of the %s settle window with %d answers",
			verb, green.Round(100*time.Millisecond), n, settle, MinSettleSamples)
	}
	switch {
	case lastFail >= 0:
		ttr = after[lastFail+1].At.Sub(w.Revert)
	case downAtRevert(overlap, w):
		// Down when the fault was reverted: recovered at the first answer.
		ttr = after[0].At.Sub(w.Revert)
	}
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

// LongestOutage is the longest outage between from and to (a zero to means
// up to the last sample), as a cell's verdict measures it: a run of failed
// requests, from the sending of the first to the sending of the next that
// succeeded (or to), each request counted for its whole flight. ok is false
// when no request in flight in the span failed.
func LongestOutage(samples []Sample, from, to time.Time) (start, end time.Time, ok bool) {
	samples = slices.Clone(samples)
	slices.SortStableFunc(samples, func(a, b Sample) int { return a.At.Compare(b.At) })
	if to.IsZero() && len(samples) > 0 {
		to = samples[len(samples)-1].At
	}
	var in []Sample
	for _, s := range samples {
		if s.At.After(from) && s.Sent().Before(to) {
			in = append(in, s)
		}
	}
	for _, o := range outages(in, Window{Inject: from, Revert: to}) {
		if !ok || o.to.Sub(o.from) > end.Sub(start) {
			start, end, ok = o.from, o.to, true
		}
	}
	return start, end, ok
}
