package reports

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/runrecord"
)

//go:embed report.html.tmpl
var pageSource string

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"short":   short,
	"inc":     func(i int) int { return i + 1 },
	"durp":    durp,
	"when":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"promise": promise,
	"judged":  judged,
	"arrow": func(e matrix.Expect) string {
		switch e {
		case matrix.Up:
			return "▲ up"
		case matrix.Down:
			return "▼ down"
		}
		return "· any"
	},
}).Parse(pageSource))

// Options of the HTML report.
type Options struct {
	// Baseline is an earlier run of the same rack: cells whose recovery got
	// worse are marked.
	Baseline *runrecord.Run
	// Dir is the folder the report is written to: dumps under it are linked
	// by relative path.
	Dir string
}

// view is what the template renders.
type view struct {
	*runrecord.Run
	Verdict   matrix.Verdict
	Probes    []string
	Rows      []rowView
	Worse     []worse
	Baseline  *runrecord.Run
	Generated time.Time
}

type rowView struct {
	runrecord.Drill
	Cells    []cellView
	Timeline template.HTML
	DumpLink string
}

type cellView struct {
	matrix.CellResult
	Was    *time.Duration // the baseline's time to recovery
	Worse  bool
	Absent bool // the drill has no cell for this probe
	Title  string
}

type worse struct {
	Fault, Probe string
	Was, Now     string
}

// worseThan says whether a recovery got worse than the baseline's: by more
// than a fifth and more than a second, so that sampling jitter is not news.
func worseThan(now, was *time.Duration) bool {
	if was == nil {
		return false
	}
	if now == nil {
		return true
	}
	return *now > *was+*was/5 && *now-*was > time.Second
}

// WriteHTML renders the report of r.
func WriteHTML(w io.Writer, r *runrecord.Run, o Options) error {
	v := view{Run: r, Verdict: r.Verdict(), Probes: matrix.Probes, Baseline: o.Baseline, Generated: time.Now()}
	base := map[string]matrix.CellResult{}
	if o.Baseline != nil {
		for _, d := range o.Baseline.Drills {
			for _, c := range d.Result.Cells {
				base[c.Fault+"/"+c.Probe] = c
			}
		}
	}
	for _, d := range r.Drills {
		rv := rowView{Drill: d, Timeline: timeline(d)}
		for _, p := range matrix.Probes {
			i := slices.IndexFunc(d.Result.Cells, func(c matrix.CellResult) bool { return c.Probe == p })
			if i < 0 {
				rv.Cells = append(rv.Cells, cellView{Absent: true, CellResult: matrix.CellResult{Fault: d.Result.Fault, Probe: p}})
				continue
			}
			c := d.Result.Cells[i]
			cv := cellView{CellResult: c}
			cv.Title = fmt.Sprintf("%s × %s: promised %s; %s", c.Fault, c.Probe, promise(c.Promise), cellText(c))
			if b, ok := base[c.Fault+"/"+c.Probe]; ok && c.Verdict != matrix.NotApplicable {
				cv.Was = b.TimeToRecovery
				if worseThan(c.TimeToRecovery, b.TimeToRecovery) {
					cv.Worse = true
					cv.Title += fmt.Sprintf("; recovery got worse: %s before", durp(b.TimeToRecovery))
					v.Worse = append(v.Worse, worse{Fault: c.Fault, Probe: c.Probe, Was: durp(b.TimeToRecovery), Now: durp(c.TimeToRecovery)})
				}
			}
			rv.Cells = append(rv.Cells, cv)
		}
		if d.Dump != "" {
			rv.DumpLink = d.Dump
			if o.Dir != "" {
				if rel, err := filepath.Rel(o.Dir, d.Dump); err == nil && !strings.HasPrefix(rel, "..") {
					rv.DumpLink = rel
				}
			}
		}
		v.Rows = append(v.Rows, rv)
	}
	return page.Execute(w, v)
}

// judged reports whether any of a row's cells was judged: a drill that
// errored after the fault window (its revert failed) still has verdicts.
func judged(rr matrix.RowResult) bool {
	for _, c := range rr.Cells {
		if c.Verdict != matrix.Errored {
			return true
		}
	}
	return false
}
