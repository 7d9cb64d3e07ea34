package report

import (
	"encoding/json"
	"fmt"
	"html/template"
	"os"
	"strings"
	"time"

	"rackdrill.dev/rackdrill/harness/matrix"
)

// Run is what the report reads of run.json.
type Run struct {
	Rack       string    `json:"rack"`
	Provider   string    `json:"provider"`
	Kubernetes string    `json:"kubernetes"`
	Suite      string    `json:"suite"`
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished"`
	Drills     []Drill   `json:"drills"`
}

// Drill is one drill of run.json.
type Drill struct {
	Result matrix.RowResult `json:"result"`
	Checks []struct {
		Name   string `json:"name"`
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
	} `json:"checks"`
	Dump string `json:"dump"`
}

// Load reads run.json.
func Load(path string) (*Run, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Run
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// WriteHTML reads runJSON and writes the report to out; it returns out.
func WriteHTML(runJSON, out string) (string, error) {
	r, err := Load(runJSON)
	if err != nil {
		return "", err
	}
	f, err := os.Create(out)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := page.Execute(f, r); err != nil {
		return "", fmt.Errorf("write %s: %w", out, err)
	}
	return out, f.Close()
}

func dur(d *time.Duration) string {
	if d == nil {
		return "–"
	}
	return d.Round(10 * time.Millisecond).String()
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"dur":   dur,
	"round": func(d time.Duration) string { return d.Round(10 * time.Millisecond).String() },
	"when":  func(t time.Time) string { return t.Format("2006-01-02 15:04:05 MST") },
	"took":  func(a, b time.Time) string { return b.Sub(a).Round(time.Second).String() },
	"lower": func(v matrix.Verdict) string { return strings.ToLower(string(v)) },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>rackdrill: {{.Rack}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
.held{background:#e3f6e3}.broken{background:#fbe0e0}.deviation{background:#fff4d6}.not-applicable{background:#eee}
.ok{color:#176b17}.bad{color:#a11}
small{color:#666}
</style></head><body>
<h1>rackdrill: rack {{.Rack}}</h1>
<p>Provider {{.Provider}}, Kubernetes {{.Kubernetes}}; {{.Suite}} from {{when .Started}}, {{took .Started .Finished}}.</p>
<h2>Summary</h2>
<table><tr><th>fault</th><th>verdict</th><th>checks</th></tr>
{{range .Drills}}<tr class="{{lower .Result.Verdict}}"><td><a href="#{{.Result.Fault}}">{{.Result.Fault}}</a></td><td>{{.Result.Verdict}}</td>
<td>{{range .Checks}}<span class="{{if .OK}}ok{{else}}bad{{end}}">{{if .OK}}✓{{else}}✗{{end}} {{.Name}}</span><br>{{end}}</td></tr>
{{end}}</table>
{{range .Drills}}
<h2 id="{{.Result.Fault}}">{{.Result.Fault}}: {{.Result.Verdict}}</h2>
<p><small>Source: {{.Result.Source}}. Fault injected {{when .Result.Window.Inject}}, reverted after {{took .Result.Window.Inject .Result.Window.Revert}}.</small></p>
<table><tr><th>probe</th><th>promise</th><th>verdict</th><th>observed</th><th>time to impact</th><th>longest outage</th><th>time to recovery</th><th>why</th></tr>
{{range .Result.Cells}}<tr class="{{lower .Verdict}}"><td>{{.Probe}}</td><td>{{.Promise.During}}{{if .Promise.Within.Duration}} within {{.Promise.Within.Duration}}{{end}}{{if .Promise.Note}}<br><small>{{.Promise.Note}}</small>{{end}}</td>
<td>{{.Verdict}}</td><td>{{.Observed}}</td><td>{{dur .TimeToImpact}}</td><td>{{round .LongestOutage}}</td><td>{{dur .TimeToRecovery}}</td><td>{{.Why}}{{if .Reason}}<br><small>deviation: {{.Reason}}</small>{{end}}</td></tr>
{{end}}</table>
{{range .Checks}}<p class="{{if .OK}}ok{{else}}bad{{end}}">{{if .OK}}✓{{else}}✗{{end}} {{.Name}}{{if .Detail}}: {{.Detail}}{{end}}</p>{{end}}
{{if .Dump}}<p>Artifacts of the failed drill: <code>{{.Dump}}</code></p>{{end}}
{{end}}
</body></html>
`))
