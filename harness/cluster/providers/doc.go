// Package providers is the one place that knows the providers' names: For
// turns a rack's spec.provider into its provider, configured from one set of
// options. (It is not in package cluster because the providers import cluster.)
package providers
