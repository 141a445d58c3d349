package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// requireLab skips the test when labs cannot be built here, or fails it
// when FLEETCAST_REQUIRE_NETNS=1 (CI) says they must be.
func requireLab(t *testing.T) {
	t.Helper()
	err := Available()
	if err == nil {
		return
	}
	if os.Getenv("FLEETCAST_REQUIRE_NETNS") == "1" {
		t.Fatalf("%v, and FLEETCAST_REQUIRE_NETNS=1 requires network namespaces", err)
	}
	t.Skipf("%v (run as root, or set FLEETCAST_REQUIRE_NETNS=1 to make this a failure)", err)
}

func newLab(t *testing.T) *Lab {
	t.Helper()
	l, err := New("fcnltest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
	})
	return l
}

func addHost(t *testing.T, l *Lab, name string, shape *Shape) *Host {
	t.Helper()
	h, err := l.AddHost(name, shape)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// echo serves TCP echo on ln until it is closed.
func echo(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

// netWait bounds each wait of these tests for the network: a bound on
// failure (a loaded machine may take seconds), not a delay.
const netWait = 10 * time.Second

// roundTrip sends a line over c and wants it back within netWait.
func roundTrip(c net.Conn) error {
	defer c.Close()
	c.SetDeadline(time.Now().Add(netWait))
	msg := []byte("hello netlab\n")
	if _, err := c.Write(msg); err != nil {
		return fmt.Errorf("send to the echo server: %w", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("no echo within %v: %w", netWait, err)
	}
	if !bytes.Equal(got, msg) {
		return errors.New("echo returned other bytes")
	}
	return nil
}

func TestLabHostsConnectAndCloseRemovesAll(t *testing.T) {
	requireLab(t)
	l := newLab(t)
	a := addHost(t, l, "a", nil)
	b := addHost(t, l, "b", &Shape{EgressBits: 100e6, IngressBits: 50e6})
	if a.IP() == b.IP() || !strings.HasPrefix(a.IP(), "198.18.") {
		t.Fatalf("host addresses %s and %s", a.IP(), b.IP())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	ln, err := b.Listen("tcp", b.IP()+":7000")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go echo(ln)
	txBefore, err := a.TxBytes()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("host to host", func(t *testing.T) {
		c, err := a.DialContext(ctx, "tcp", b.IP()+":7000")
		if err != nil {
			t.Fatal(err)
		}
		if err := roundTrip(c); err != nil {
			t.Fatal(err)
		}
		if tx, _ := a.TxBytes(); tx <= txBefore {
			t.Errorf("a's tx counter %d did not grow from %d", tx, txBefore)
		}
		if rx, _ := b.RxBytes(); rx == 0 {
			t.Error("b's rx counter is 0")
		}
	})
	t.Run("root namespace to host", func(t *testing.T) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", b.IP()+":7000")
		if err != nil {
			t.Fatal(err)
		}
		if err := roundTrip(c); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("multicast", func(t *testing.T) { testMulticast(t, a, b) })
	t.Run("command runs in the namespace", func(t *testing.T) {
		out, err := a.Command(ctx, "ip", "-o", "-4", "addr", "show", "dev", "eth0").CombinedOutput()
		if err != nil || !strings.Contains(string(out), " "+a.IP()+"/24 ") {
			t.Fatalf("ip addr in %s: %v\n%s", a.Namespace(), err, out)
		}
	})
	t.Run("link down cuts the host off", func(t *testing.T) {
		if err := b.SetLinkUp(false); err != nil {
			t.Fatal(err)
		}
		short, cancelShort := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancelShort()
		if c, err := a.DialContext(short, "tcp", b.IP()+":7000"); err == nil {
			c.Close()
			t.Fatal("a reached b with b's link down")
		}
		if err := b.SetLinkUp(true); err != nil {
			t.Fatal(err)
		}
		c, err := a.DialContext(ctx, "tcp", b.IP()+":7000")
		if err != nil {
			t.Fatalf("after link up: %v", err)
		}
		if err := roundTrip(c); err != nil {
			t.Fatal(err)
		}
	})

	// Close kills what runs in the namespaces and removes every name.
	sleeper := a.Command(ctx, "sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sleeper.Wait(); err == nil {
		t.Error("sleep 600 exited 0: Close did not kill it")
	}
	for _, h := range []*Host{a, b} {
		if exists(filepath.Join(netnsDir, h.Namespace())) {
			t.Errorf("namespace %s left after Close", h.Namespace())
		}
		if exists(filepath.Join("/sys/class/net", h.veth)) {
			t.Errorf("veth %s left after Close", h.veth)
		}
	}
	if exists(filepath.Join("/sys/class/net", l.Bridge())) {
		t.Errorf("bridge %s left after Close", l.Bridge())
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// testMulticast sends one UDP datagram from a to a link-local multicast
// group b has joined on eth0, as mDNS does.
func testMulticast(t *testing.T, a, b *Host) {
	group := &net.UDPAddr{IP: net.IPv4(224, 0, 0, 250), Port: 9999}
	var rc *net.UDPConn
	err := b.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		rc, err = net.ListenMulticastUDP("udp4", ifi, group)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var sc *net.UDPConn
	if err := a.Do(func() (err error) {
		sc, err = net.DialUDP("udp4", nil, group)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	// Datagrams may be lost: send one every resend until one arrives.
	const resend = 100 * time.Millisecond
	buf := make([]byte, 64)
	for deadline := time.Now().Add(netWait); ; {
		if _, err := sc.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		rc.SetReadDeadline(time.Now().Add(resend))
		n, from, err := rc.ReadFromUDP(buf)
		if err == nil && string(buf[:n]) == "ping" && from.IP.String() == a.IP() {
			return
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("receive the multicast datagram: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no multicast datagram from a (%s) to %v within %v (last: %v)", a.IP(), group, netWait, err)
		}
	}
}

func TestLabCloseAfterFailedAddHost(t *testing.T) {
	requireLab(t)
	l := newLab(t)
	if _, err := l.AddHost("Bad Name", nil); err == nil {
		t.Fatal("AddHost accepted a name with a space")
	}
	h := addHost(t, l, "ok", nil)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(netnsDir, h.Namespace())) {
		t.Errorf("namespace %s left after Close", h.Namespace())
	}
	if _, err := l.AddHost("late", nil); err == nil {
		t.Error("AddHost after Close succeeded")
	}
}
