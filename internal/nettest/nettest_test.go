package nettest

import (
	"net"
	"strconv"
	"testing"
	"time"
)

func TestFreePort(t *testing.T) {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t))))
	if err != nil {
		t.Fatalf("listen on the free port: %v", err)
	}
	ln.Close()
}

// TestDeadAddr: nothing answers at the address, for as long as the test
// runs, even when servers are started meanwhile.
func TestDeadAddr(t *testing.T) {
	addr := DeadAddr(t)
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if ln.Addr().String() == addr {
			t.Fatalf("a new listener took the dead address %s", addr)
		}
	}
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
		c.Close()
		t.Fatalf("a connection to the dead address %s was accepted", addr)
	}
}
