package upgrade

import (
	"testing"
	"time"

	"rackdrill.dev/rackdrill/harness/runrecord"
)

// The longest outage per machine counts only the samples within that
// machine's steps, from the first failure to the next good sample.
func TestOutagesPerMachine(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 13, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	steps := []runrecord.Step{
		{Machine: "server-1", Start: at(0), End: at(10)},
		{Machine: "server-1", Start: at(10), End: at(30)},
		{Machine: "server-2", Start: at(30), End: at(60)},
		{Name: "no machine", Start: at(0), End: at(100)},
	}
	var samples []runrecord.Sample
	for s := 0; s <= 70; s++ {
		// server-1: down 5..7 (2 s, then good at 8) and 20..25 (good at 26: 6 s);
		// server-2: down from 55 to its end (60: 5 s); 65..70 belongs to nobody.
		down := (s >= 5 && s <= 7) || (s >= 20 && s <= 25) || s >= 55
		samples = append(samples, runrecord.Sample{At: at(s), OK: !down})
	}
	got := Outages(steps, samples)
	if len(got) != 2 || got[0].Machine != "server-1" || got[1].Machine != "server-2" {
		t.Fatalf("outages %+v", got)
	}
	if got[0].Longest != 6*time.Second || got[1].Longest != 5*time.Second {
		t.Errorf("server-1 %s (want 6s), server-2 %s (want 5s)", got[0].Longest, got[1].Longest)
	}
	if !got[0].From.Equal(at(0)) || !got[0].To.Equal(at(30)) {
		t.Errorf("server-1's span %s..%s", got[0].From, got[0].To)
	}
}
