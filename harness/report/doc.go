// Package report turns a run's run.json into the report people read: one
// self-contained HTML file (no script, no external asset) with every drill's
// verdict, each cell's promise and observation, time to impact and to recovery,
// the drill's other checks and where its dump is.
package report
