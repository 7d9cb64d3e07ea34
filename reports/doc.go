// Package reports turns a run's run.json (package runrecord) into what people
// and CI read: one
// self-contained HTML report (inline CSS and SVG, no script, no external
// asset: it opens offline) with the impact matrix as a grid, a timeline chart
// per drill, the sources, deviations and dumps, the conformance and
// pre-upgrade checks and, given a baseline run, the recovery times that got
// worse; and JUnit XML with one testsuite per drill (one testcase per matrix
// cell and per drill check) and one for the checks, in the shape Jenkins and
// GitHub's test reporters read.
package reports
