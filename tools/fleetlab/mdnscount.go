//go:build linux

package main

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// mdnsPort is the UDP port of mDNS (RFC 6762).
const mdnsPort = 5353

// mdnsCounter counts the mDNS packets (UDP to port 5353, over IPv4 or IPv6)
// sent on the lab's LAN, with a packet socket on the lab's bridge in the
// root namespace. The bridge floods multicast (netlab turns its snooping
// off) to every port and to itself, so each packet a host sends reaches
// the socket once, whatever the number of hosts. It needs no tool, only
// root.
type mdnsCounter struct {
	file    *os.File
	n       atomic.Int64
	closing atomic.Bool
	done    chan error // the read loop's result
}

// startMDNSCounter opens the socket on the bridge and starts counting;
// close stops it.
func startMDNSCounter(bridge string) (*mdnsCounter, error) {
	ifi, err := net.InterfaceByName(bridge)
	if err != nil {
		return nil, fmt.Errorf("mdns counter: %w", err)
	}
	all := int(htons(unix.ETH_P_ALL))
	// SOCK_DGRAM: frames without their link header, the network protocol
	// and the packet type in the sender's address.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, all)
	if err != nil {
		return nil, fmt.Errorf("mdns counter: packet socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(all), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("mdns counter: bind to %s: %w", bridge, err)
	}
	c := &mdnsCounter{file: os.NewFile(uintptr(fd), "packet:"+bridge), done: make(chan error, 1)}
	go func() { c.done <- c.run() }()
	return c, nil
}

// count is the number of mDNS packets seen so far.
func (c *mdnsCounter) count() int64 { return c.n.Load() }

// close stops the read loop and waits for it.
func (c *mdnsCounter) close() error {
	c.closing.Store(true)
	c.file.Close()
	if err := <-c.done; err != nil {
		return fmt.Errorf("mdns counter: %w", err)
	}
	return nil
}

// run reads packets until the socket is closed. Only their first bytes
// matter: recvfrom truncates the rest.
func (c *mdnsCounter) run() error {
	rc, err := c.file.SyscallConn()
	if err != nil {
		return err
	}
	buf := make([]byte, 64)
	for {
		var n int
		var from unix.Sockaddr
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), buf, 0)
			return !errors.Is(rerr, unix.EAGAIN)
		})
		if err = cmp.Or(err, rerr); err != nil {
			if c.closing.Load() {
				return nil // closed by close
			}
			return err
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if ok && ll.Pkttype != unix.PACKET_OUTGOING && isMDNS(htons(ll.Protocol), buf[:min(n, len(buf))]) {
			c.n.Add(1)
		}
	}
}

// isMDNS reports whether pkt, a network packet of ethertype proto, is UDP
// to the mDNS port; an IPv6 packet with extension headers before UDP is
// not recognized (mDNS packets have none).
func isMDNS(proto uint16, pkt []byte) bool {
	var udp []byte
	switch proto {
	case unix.ETH_P_IP:
		if len(pkt) < 20 || pkt[9] != unix.IPPROTO_UDP || binary.BigEndian.Uint16(pkt[6:8])&0x1fff != 0 {
			return false // not UDP, or a fragment after the first
		}
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < 20 || ihl > len(pkt) {
			return false
		}
		udp = pkt[ihl:]
	case unix.ETH_P_IPV6:
		if len(pkt) < 40 || pkt[6] != unix.IPPROTO_UDP {
			return false
		}
		udp = pkt[40:]
	default:
		return false
	}
	return len(udp) >= 4 && binary.BigEndian.Uint16(udp[2:4]) == mdnsPort
}

// htons converts between host and network byte order.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
