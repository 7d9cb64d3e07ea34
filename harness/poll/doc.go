// Package poll is how the harness waits for a state: apimachinery's wait
// helpers, with the outcomes the callers tell apart (done, the limit passed,
// the caller's context ended) and the condition run with the caller's context,
// so that a check started just before the limit is not cut short by it.
package poll
