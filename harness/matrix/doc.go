// Package matrix owns the documented impact matrix: the file that encodes it
// (scenarios/impact-matrix.yaml: one row per fault, one cell per probe, each
// row with its source), the environments' overlays of known deviations, and
// the pure evaluation of probe timelines against the cells: pass or fail, time
// to impact, longest outage, time to recovery, and one sentence of why.
//
// It is data and pure functions, so that reports and tests can feed it recorded
// timelines without a rack.
package matrix
