//go:build !unix

package statusclient

import (
	"net"
	"testing"
)

// deadAddr returns a loopback address where nothing listens: a port
// closed after use (another test's server may take it meanwhile; on unix,
// deadaddr_unix_test.go holds the port).
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
