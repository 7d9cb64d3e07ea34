package reports

import (
	"fmt"
	"html"
	"html/template"
	"slices"
	"strings"
	"time"

	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/runrecord"
)

// Geometry of a timeline chart, in SVG user units (pixels at 100%).
const (
	chartWidth  = 960
	labelWidth  = 80
	plotWidth   = chartWidth - labelWidth - 10
	axisHeight  = 22
	laneHeight  = 16
	laneGap     = 8
	legendSpace = 18
)

// timeline draws one drill as inline SVG: a lane per probe, green where its
// samples were up and red where they were down, the injection and the
// revert as vertical lines, the row's recovery budget as a dashed line after
// the revert, the fault's effect as dots at the top (first seen, then each
// look through the window, red where undone), and each cell's own budget on its lane (the longest blip an up
// promise allows, the deadline by which a down promise must be down).
func timeline(d runrecord.Drill) template.HTML {
	var probes []string
	for _, p := range matrix.Probes {
		if len(d.Timelines[p]) > 0 {
			probes = append(probes, p)
		}
	}
	res := d.Result
	if len(probes) == 0 {
		return template.HTML(fmt.Sprintf(`<p class="nochart" data-fault="%s">No samples: %s.</p>`,
			html.EscapeString(res.Fault), html.EscapeString(orDash(string(res.Verdict)))))
	}
	start, end := res.Window.Inject, res.Window.End
	for _, p := range probes {
		s := d.Timelines[p]
		if start.IsZero() || s[0].At.Before(start) {
			start = s[0].At
		}
		if last := s[len(s)-1].At; last.After(end) {
			end = last
		}
	}
	// The chart spans what was sampled: a recovery budget that ends later is
	// said at its right edge rather than squeezing the samples.
	span := end.Sub(start)
	if span <= 0 {
		span = time.Second
	}
	x := func(t time.Time) float64 {
		return labelWidth + float64(t.Sub(start))/float64(span)*plotWidth
	}
	height := axisHeight + len(probes)*(laneHeight+laneGap) + legendSpace
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="timeline" data-fault="%s" data-lanes="%d" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="timeline of %s">`,
		html.EscapeString(res.Fault), len(probes), chartWidth, height, chartWidth, height, html.EscapeString(res.Fault))
	// Axis: seconds from the injection.
	step := tickStep(span)
	origin := res.Window.Inject
	if origin.IsZero() {
		origin = start
	}
	for t := origin.Add(-step * time.Duration(origin.Sub(start)/step)); !t.After(end); t = t.Add(step) {
		if t.Before(start) {
			continue
		}
		rel := t.Sub(origin)
		label := "+" + short(rel)
		if rel < 0 {
			label = "−" + short(-rel)
		} else if rel == 0 {
			label = "0"
		}
		fmt.Fprintf(&b, `<line class="tick" x1="%.1f" y1="%d" x2="%.1f" y2="%d"/><text class="ticklabel" x="%.1f" y="12">%s</text>`,
			x(t), axisHeight-4, x(t), height-legendSpace, x(t), label)
	}
	for i, p := range probes {
		y := axisHeight + i*(laneHeight+laneGap)
		samples := d.Timelines[p]
		fmt.Fprintf(&b, `<g class="lane" data-probe="%s"><text class="lanelabel" x="0" y="%d">%s</text>`, p, y+laneHeight-3, p)
		for _, seg := range segments(samples, end) {
			state := "up"
			if !seg.ok {
				state = "down"
			}
			w := x(seg.to) - x(seg.from)
			if w < 0.5 {
				w = 0.5
			}
			fmt.Fprintf(&b, `<rect class="seg %s" x="%.1f" y="%d" width="%.1f" height="%d"><title>%s %s for %s from %s</title></rect>`,
				state, x(seg.from), y, w, laneHeight, p, state, short(seg.to.Sub(seg.from)), rel(seg.from, origin))
		}
		if i := slices.IndexFunc(res.Cells, func(c matrix.CellResult) bool { return c.Probe == p }); i >= 0 && !res.Window.Inject.IsZero() {
			c := res.Cells[i].Promise
			if c.Within.Duration > 0 {
				bx := x(res.Window.Inject.Add(c.Within.Duration))
				switch c.During {
				case matrix.Up:
					fmt.Fprintf(&b, `<line class="budget blip" x1="%.1f" y1="%d" x2="%.1f" y2="%d"><title>%s: a blip of up to %s is allowed</title></line>`,
						x(res.Window.Inject), y+laneHeight+3, bx, y+laneHeight+3, p, short(c.Within.Duration))
				case matrix.Down:
					fmt.Fprintf(&b, `<line class="budget deadline" x1="%.1f" y1="%d" x2="%.1f" y2="%d"><title>%s must be down by %s</title></line>`,
						bx, y-2, bx, y+laneHeight+2, p, rel(res.Window.Inject.Add(c.Within.Duration), origin))
				}
			}
		}
		b.WriteString(`</g>`)
	}
	bottom := height - legendSpace
	mark := func(class string, t time.Time, label string) {
		if t.IsZero() {
			return
		}
		if t.After(end) {
			fmt.Fprintf(&b, `<text class="marklabel %s" x="%d" y="%d" text-anchor="end">%s at %s, after the chart →</text>`,
				class, labelWidth+plotWidth, bottom+13, label, rel(t, origin))
			return
		}
		anchor, lx := "start", x(t)+3
		if x(t) > labelWidth+plotWidth-120 {
			anchor, lx = "end", x(t)-3
		}
		fmt.Fprintf(&b, `<line class="mark %s" x1="%.1f" y1="%d" x2="%.1f" y2="%d"><title>%s at %s</title></line><text class="marklabel %s" x="%.1f" y="%d" text-anchor="%s">%s</text>`,
			class, x(t), axisHeight-6, x(t), bottom, label, rel(t, origin), class, lx, bottom+13, anchor, label)
	}
	// A fault that runs in steps (the rehearsed upgrade): a thin line at
	// each step's start, numbered, its name and span in the line's title,
	// red for the step that failed.
	for i, st := range d.Steps {
		if st.Start.Before(start) || st.Start.After(end) {
			continue
		}
		class := "step"
		if st.Error != "" {
			class = "step failed"
		}
		fmt.Fprintf(&b, `<line class="%s" x1="%.1f" y1="%d" x2="%.1f" y2="%d"><title>step %d: %s, %s to %s</title></line><text class="steplabel" x="%.1f" y="%d" text-anchor="middle">%d</text>`,
			class, x(st.Start), axisHeight-6, x(st.Start), bottom, i+1, html.EscapeString(st.Name), rel(st.Start, origin), rel(st.End, origin),
			x(st.Start), axisHeight-8, i+1)
	}
	// The fault's effect: a dot where it was first seen and at each look
	// through the window, red where it was found undone.
	if e := d.Effect; e != nil && !res.Window.Inject.IsZero() {
		dot := func(t time.Time, class, what string) {
			if t.Before(start) || t.After(end) {
				return
			}
			fmt.Fprintf(&b, `<circle class="effect %s" cx="%.1f" cy="%d" r="2.5"><title>%s at %s</title></circle>`,
				class, x(t), axisHeight-3, html.EscapeString(what), rel(t, origin))
		}
		if e.Seen {
			dot(res.Window.Inject.Add(e.After), "seen", "the fault took effect: "+e.What)
		}
		for _, l := range e.Looks {
			if l.Seen {
				dot(l.At, "held", "still in place")
			} else {
				dot(l.At, "undone", "undone: "+l.Detail)
			}
		}
	}
	mark("inject", res.Window.Inject, "inject")
	mark("revert", res.Window.Revert, "revert")
	if res.Recovery > 0 && !res.Window.Revert.IsZero() {
		mark("recovery", res.Window.Revert.Add(res.Recovery), "recovery budget")
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // every text in it is escaped or ours
}

type segment struct {
	from, to time.Time
	ok       bool
}

// segments merges consecutive samples of the same state: each sample holds
// until the next one (the last until end).
func segments(s []runrecord.Sample, end time.Time) []segment {
	var out []segment
	for i, smp := range s {
		to := end
		if i+1 < len(s) {
			to = s[i+1].At
		}
		if n := len(out); n > 0 && out[n-1].ok == smp.OK {
			out[n-1].to = to
			continue
		}
		out = append(out, segment{from: smp.At, to: to, ok: smp.OK})
	}
	return out
}

func tickStep(span time.Duration) time.Duration {
	for _, s := range []time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute} {
		if span/s <= 12 {
			return s
		}
	}
	return 30 * time.Minute
}

func rel(t, origin time.Time) string {
	d := t.Sub(origin)
	if d < 0 {
		return "−" + short(-d)
	}
	return "+" + short(d)
}
