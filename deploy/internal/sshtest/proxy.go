package sshtest

import (
	"fmt"
	"io"
	"net"
	"os"
)

// ProxyMain is the body of a test binary run as a proxy command, the role
// that `aws ssm start-session` or `gcloud compute start-iap-tunnel` plays
// for real: it connects to addr and copies its standard input and output
// to and from the connection. It returns the exit code.
func ProxyMain(addr string) int {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "proxy:", err)
		return 2
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(c, os.Stdin); done <- struct{}{} }()
	go func() { io.Copy(os.Stdout, c); done <- struct{}{} }()
	<-done
	return 0
}
