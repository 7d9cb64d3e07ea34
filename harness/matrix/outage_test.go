package matrix_test

import (
	"testing"
	"time"

	"rackdrill.dev/rackdrill/harness/matrix"
)

// The longest outage of a span runs from its first failed sample to the next
// good one; one still running ends with the span, or, when the span has no
// end (a fault that never reverted), with the last sample.
func TestLongestOutage(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	samples := []matrix.Sample{
		{At: at(1), OK: false}, {At: at(2), OK: true}, // before the span
		{At: at(10), OK: false}, {At: at(12), OK: true}, // 2 s
		{At: at(20), OK: false}, {At: at(25), OK: false}, {At: at(27), OK: true}, // 7 s
		{At: at(30), OK: true},
		{At: at(40), OK: false}, {At: at(44), OK: false}, // still down at the end
	}
	for _, c := range []struct {
		name       string
		from, to   time.Time
		start, end time.Time
		ok         bool
	}{
		{"the longest of several", at(5), at(35), at(20), at(27), true},
		{"one running to the span's end", at(5), at(60), at(40), at(60), true},
		{"no end: to the last sample", at(35), time.Time{}, at(40), at(44), true},
		{"none in the span", at(28), at(39), time.Time{}, time.Time{}, false},
	} {
		start, end, ok := matrix.LongestOutage(samples, c.from, c.to)
		if ok != c.ok || !start.Equal(c.start) || !end.Equal(c.end) {
			t.Errorf("%s: %v..%v %v, want %v..%v %v", c.name, start.Sub(t0), end.Sub(t0), ok, c.start.Sub(t0), c.end.Sub(t0), c.ok)
		}
	}
}

// A request that hung to its timeout is an outage for its whole flight, as
// the cell's verdict counts it: the rehearsal printed "API's longest outage
// while server-1 was upgraded: 0s" for requests that each hung 2 s, answered
// by good ones sent while they hung, beside a cell that said "longest blip
// 4.001s".
func TestLongestOutageCountsTheFlight(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 23, 41, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	samples := []matrix.Sample{
		{At: at(1000), OK: true, Took: 50 * time.Millisecond},
		{At: at(3250), OK: false, Took: 2 * time.Second},      // sent at 1250
		{At: at(3300), OK: true, Took: 50 * time.Millisecond}, // sent at 3250
		{At: at(4000), OK: true, Took: 50 * time.Millisecond},
	}
	start, end, ok := matrix.LongestOutage(samples, t0, at(5000))
	if !ok || !start.Equal(at(1250)) || !end.Equal(at(3250)) {
		t.Errorf("%v..%v %v, want the request's flight, 1.25s..3.25s", start.Sub(t0), end.Sub(t0), ok)
	}
	cell := matrix.Evaluate("f", "api", matrix.Cell{During: matrix.Up, Within: metaDur(10 * time.Second)}, samples,
		matrix.Window{Inject: t0, Revert: at(5000), End: at(5000)}, time.Minute, 3*time.Second)
	if cell.LongestOutage != end.Sub(start) {
		t.Errorf("the verdict's longest outage %s, LongestOutage's %s", cell.LongestOutage, end.Sub(start))
	}
}
