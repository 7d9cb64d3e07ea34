// Package rackclient is how the harness talks to a rack's API. Two configs,
// each for its use and each with its named timeout: the probes' (one request
// per sample, no client-side rate limit, bounded by the probe's context) and
// the operations' (deploying, reading state, checks, faults). Every manifest the
// harness installs is applied server-side (Applier).
package rackclient
