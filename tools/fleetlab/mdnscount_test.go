//go:build linux

package main

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestIsMDNS(t *testing.T) {
	ipv4 := func(proto byte, frag uint16, dport uint16) []byte {
		p := make([]byte, 28)
		p[0] = 0x45 // version 4, 20-byte header
		p[6], p[7] = byte(frag>>8), byte(frag)
		p[9] = proto
		p[22], p[23] = byte(dport>>8), byte(dport)
		return p
	}
	ipv6 := func(next byte, dport uint16) []byte {
		p := make([]byte, 48)
		p[0] = 0x60
		p[6] = next
		p[42], p[43] = byte(dport>>8), byte(dport)
		return p
	}
	for _, tt := range []struct {
		name  string
		proto uint16
		pkt   []byte
		want  bool
	}{
		{"ipv4 mdns", unix.ETH_P_IP, ipv4(unix.IPPROTO_UDP, 0, 5353), true},
		{"ipv4 other port", unix.ETH_P_IP, ipv4(unix.IPPROTO_UDP, 0, 53), false},
		{"ipv4 tcp", unix.ETH_P_IP, ipv4(unix.IPPROTO_TCP, 0, 5353), false},
		{"ipv4 later fragment", unix.ETH_P_IP, ipv4(unix.IPPROTO_UDP, 100, 5353), false},
		{"ipv4 bad header length", unix.ETH_P_IP, append([]byte{0x4f}, ipv4(unix.IPPROTO_UDP, 0, 5353)[1:]...), false},
		{"ipv4 short", unix.ETH_P_IP, ipv4(unix.IPPROTO_UDP, 0, 5353)[:21], false},
		{"ipv6 mdns", unix.ETH_P_IPV6, ipv6(unix.IPPROTO_UDP, 5353), true},
		{"ipv6 icmp", unix.ETH_P_IPV6, ipv6(unix.IPPROTO_ICMPV6, 5353), false},
		{"arp", unix.ETH_P_ARP, ipv4(unix.IPPROTO_UDP, 0, 5353), false},
	} {
		if got := isMDNS(tt.proto, tt.pkt); got != tt.want {
			t.Errorf("%s: isMDNS = %v, want %v", tt.name, got, tt.want)
		}
	}
}
