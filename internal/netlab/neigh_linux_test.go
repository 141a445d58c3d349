package netlab

import (
	"fmt"
	"net"
	"testing"
)

// TestLabRaisesNeighbourCaps: a lab too large for the kernel's neighbour
// table caps raises them while it lives, every host is reachable from the
// test process, and Close puts the caps back.
func TestLabRaisesNeighbourCaps(t *testing.T) {
	requireLab(t)
	const cap3 = "/proc/sys/net/ipv4/neigh/default/gc_thresh3"
	before, err := readInt(cap3)
	if err != nil {
		t.Fatal(err)
	}
	n := 1
	for 4*(n+1)*(n+1) <= before {
		n++
	}
	if n > maxHosts {
		t.Skipf("gc_thresh3 is %d: a lab of %d hosts fits", before, maxHosts)
	}
	l, err := New("fcnltest")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var hosts []*Host
	for i := range n {
		hosts = append(hosts, addHost(t, l, fmt.Sprintf("h%d", i+1), nil))
	}
	if during, err := readInt(cap3); err != nil || during < 4*(n+1)*(n+1) {
		t.Errorf("gc_thresh3 = %d (%v) with %d hosts, want at least %d", during, err, n, 4*(n+1)*(n+1))
	}
	for _, h := range hosts {
		ln, err := h.Listen("tcp", h.IP()+":7000")
		if err != nil {
			t.Fatal(err)
		}
		go echo(ln)
		defer ln.Close()
	}
	for _, h := range hosts {
		c, err := net.DialTimeout("tcp", h.IP()+":7000", netWait)
		if err != nil {
			t.Fatalf("%s unreachable from the test process within %v: %v", h.Name(), netWait, err)
		}
		c.Close()
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if after, err := readInt(cap3); err != nil || after != before {
		t.Errorf("gc_thresh3 = %d (%v) after Close, want %d back", after, err, before)
	}
}
