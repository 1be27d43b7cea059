// Package e2e holds end-to-end tests and benchmarks that build and run the
// real bin/luna and bin/lunactl and talk to them over loopback TCP.
package e2e
