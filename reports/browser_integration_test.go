package reports

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"rackdrill.dev/rackdrill/harness/matrix"
)

// chromium starts a headless Chromium for the test, offline: the network is
// emulated as disconnected, and every request the page makes is recorded.
func chromium(t testing.TB) (context.Context, func() []string) {
	t.Helper()
	exe := requireTool(t, "chromium", "chromium-browser", "google-chrome")
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900), chromedp.Flag("disable-gpu", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	var mu sync.Mutex
	var urls []string
	chromedp.ListenTarget(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			urls = append(urls, e.Request.URL)
			mu.Unlock()
		}
	})
	if err := chromedp.Run(ctx, network.Enable(), network.EmulateNetworkConditions(true, 0, -1, -1)); err != nil {
		t.Fatalf("start %s: %v", exe, err)
	}
	return ctx, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), urls...) }
}

// domState is what the test reads of the rendered page.
type domState struct {
	Cells []struct {
		Fault, Probe, State string
		X, Y, W, H          float64
	}
	Charts []struct {
		Fault string
		Lanes []struct {
			Probe       string
			Segs, Drawn int
		}
		Marks int
	}
	Checks int
}

const readDOM = `(() => {
  const box = e => { const r = e.getBoundingClientRect(); return {X: r.left + scrollX, Y: r.top + scrollY, W: r.width, H: r.height}; };
  return {
    Cells: [...document.querySelectorAll('#matrix td.cell')].map(td => Object.assign(
      {Fault: td.dataset.fault, Probe: td.dataset.probe, State: td.dataset.state}, box(td))),
    Charts: [...document.querySelectorAll('svg.timeline')].map(svg => ({
      Fault: svg.dataset.fault,
      Marks: svg.querySelectorAll('line.mark').length,
      Lanes: [...svg.querySelectorAll('g.lane')].map(g => ({
        Probe: g.dataset.probe,
        Segs: g.querySelectorAll('rect.seg').length,
        Drawn: [...g.querySelectorAll('rect.seg')].filter(r => r.getBBox().width > 0 && r.getBBox().height > 0).length,
      })),
    })),
    Checks: document.querySelectorAll('#checks-table tr[data-state]').length,
  };
})()`

// TestIntegrationReportInChromium opens the report of the recorded lab run in
// headless Chromium with no network, and checks what an SRE relies on: one
// grid cell per matrix cell in the state of run.json, a timeline chart per
// drill with a drawn lane per probe and the inject and revert marks, the
// checks table; a screenshot (kept in the test's folder) shows a held cell's
// colour where the DOM puts it. The file stays under 2 MiB.
func TestIntegrationReportInChromium(t *testing.T) {
	r := loadRecorded(t)
	dir := t.TempDir()
	w, err := Render(r, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(w.HTML)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 2<<20 {
		t.Errorf("report.html of a full run is %d bytes, over 2 MiB", fi.Size())
	}
	t.Logf("report.html: %d KiB", fi.Size()>>10)

	ctx, requests := chromium(t)
	var dom domState
	var shot []byte
	var loadMS float64
	if err := chromedp.Run(ctx,
		chromedp.Navigate("file://"+w.HTML),
		chromedp.WaitReady("#matrix", chromedp.ByQuery),
		chromedp.Evaluate(readDOM, &dom),
		chromedp.Evaluate(`performance.getEntriesByType("navigation")[0].loadEventEnd`, &loadMS),
		chromedp.FullScreenshot(&shot, 100),
	); err != nil {
		t.Fatal(err)
	}
	t.Logf("Chromium loaded the report in %.0f ms (its Navigation Timing)", loadMS)
	for _, u := range requests() {
		if !strings.HasPrefix(u, "file://") && !strings.HasPrefix(u, "data:") {
			t.Errorf("the report asked the network for %s", u)
		}
	}

	// The grid: the state of every cell is its verdict in run.json.
	want := map[string]string{}
	for _, d := range r.Drills {
		for _, c := range d.Result.Cells {
			want[c.Fault+"/"+c.Probe] = string(c.Verdict)
		}
	}
	seen := 0
	for _, c := range dom.Cells {
		if c.State == "absent" {
			continue
		}
		seen++
		if want[c.Fault+"/"+c.Probe] != c.State {
			t.Errorf("cell %s/%s shows %q, run.json says %q", c.Fault, c.Probe, c.State, want[c.Fault+"/"+c.Probe])
		}
	}
	if seen != len(want) {
		t.Errorf("the grid has %d cells, the matrix of the run %d", seen, len(want))
	}

	// A timeline per drill, a drawn lane per sampled probe, both marks.
	if len(dom.Charts) != len(r.Drills) {
		t.Errorf("%d timeline charts, want one per drill (%d)", len(dom.Charts), len(r.Drills))
	}
	for i, ch := range dom.Charts {
		d := r.Drills[min(i, len(r.Drills)-1)]
		sampled := 0
		for _, p := range matrix.Probes {
			if len(d.Timelines[p]) > 0 {
				sampled++
			}
		}
		if ch.Fault != d.Result.Fault || len(ch.Lanes) != sampled || ch.Marks < 2 {
			t.Errorf("chart %s: %d lanes (want %d), %d marks (want inject and revert)", ch.Fault, len(ch.Lanes), sampled, ch.Marks)
		}
		for _, l := range ch.Lanes {
			if l.Segs == 0 || l.Drawn != l.Segs {
				t.Errorf("chart %s lane %s: %d of %d segments drawn", ch.Fault, l.Probe, l.Drawn, l.Segs)
			}
		}
	}
	if dom.Checks != len(r.Checks) {
		t.Errorf("the checks table has %d rows, the run %d checks", dom.Checks, len(r.Checks))
	}

	// The screenshot: a held cell is green where the DOM says it is.
	if err := os.WriteFile(filepath.Join(dir, "report.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatal(err)
	}
	checked := false
	for _, c := range dom.Cells {
		if c.State != string(matrix.Held) {
			continue
		}
		// Inside the cell's padding, bottom right: background, not text.
		px := img.At(int(c.X+c.W-4), int(c.Y+c.H-4))
		if !near(px, 0xe2, 0xf4, 0xe6) {
			t.Errorf("held cell %s/%s: pixel %v, want the held colour #e2f4e6", c.Fault, c.Probe, px)
		}
		checked = true
		break
	}
	if !checked {
		t.Error("no held cell to check on the screenshot")
	}
	t.Logf("screenshot: %s (%dx%d)", filepath.Join(dir, "report.png"), img.Bounds().Dx(), img.Bounds().Dy())
}

func near(c interface{ RGBA() (r, g, b, a uint32) }, r, g, b uint8) bool {
	cr, cg, cb, _ := c.RGBA()
	d := func(x uint32, y uint8) bool { v := int(x>>8) - int(y); return v > -6 && v < 6 }
	return d(cr, r) && d(cg, g) && d(cb, b)
}

// BenchmarkReportOpenInChromium measures how long headless Chromium takes to
// load the report of the recorded full run (its own Navigation Timing, from
// navigation start to the end of the load event), as ms/open.
func BenchmarkReportOpenInChromium(b *testing.B) {
	r := loadRecorded(b)
	dir := b.TempDir()
	w, err := Render(r, dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, _ := chromium(b)
	var total float64
	for b.Loop() {
		var ms float64
		if err := chromedp.Run(ctx, chromedp.Navigate("file://"+w.HTML),
			chromedp.Evaluate(`performance.getEntriesByType("navigation")[0].loadEventEnd`, &ms)); err != nil {
			b.Fatal(err)
		}
		total += ms
	}
	b.ReportMetric(total/float64(b.N), "ms/open")
}
