// Package runrecord is run.json: what a run writes and what the reports (JUnit,
// HTML, a later `rackdrill report`) read. The writer and the reader share these
// types; the file carries their apiVersion, and Load refuses one it does not
// know rather than reading it wrongly.
package runrecord
