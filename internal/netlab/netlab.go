// Package netlab builds throwaway networks of Linux network namespaces for
// tests and the rollout lab: one bridge in the root namespace and any number
// of hosts, each a namespace wired to the bridge by a veth pair, optionally
// with its upload and download rate shaped by tc.
//
// Every address is taken from 198.18.0.0/15 (RFC 2544, benchmarking), one
// random /24 per lab, so labs of parallel test runs do not collide and no
// lab traffic can leave the machine. The root namespace holds the bridge's
// address (198.18.X.254), so a test process reaches every host directly.
//
// It needs Linux, root, and the ip and tc commands (iproute2): call
// Available first. On other systems every constructor returns an error that
// wraps errors.ErrUnsupported.
//
// A Lab and its Hosts are safe for concurrent use. Close removes everything
// the lab created, also when a test failed half-way.
package netlab

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"sync"
)

// Shape limits a host's link rate, in bits per second; 0 leaves a direction
// unlimited.
type Shape struct {
	EgressBits  int64 // the host's upload: what it sends
	IngressBits int64 // the host's download: what it receives
}

// Lab is one bridge and the hosts attached to it.
type Lab struct {
	prefix string
	id     string // random hex, part of every name the lab creates
	bridge string // bridge interface in the root namespace
	subnet int    // X of 198.18.X.0/24

	mu     sync.Mutex
	hosts  []*Host
	closed bool
	raised bool  // raised the kernel's neighbour table caps (neigh_linux.go)
	err    error // the result of the first Close
}

// Host is one network namespace attached to the lab's bridge.
type Host struct {
	lab  *Lab
	name string
	ns   string // network namespace name
	veth string // the veth end attached to the bridge, in the root namespace
	ip   string

	mu   sync.Mutex
	cmds []*exec.Cmd // started through Command; killed by Lab.Close
}

// Bridge is the name of the lab's bridge interface in the root namespace.
func (l *Lab) Bridge() string { return l.bridge }

// Gateway is the bridge's address, 198.18.X.254, which the root namespace
// (the test process) uses on the lab network.
func (l *Lab) Gateway() string { return fmt.Sprintf("198.18.%d.254", l.subnet) }

// Hosts returns the hosts added so far, in order.
func (l *Lab) Hosts() []*Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Host(nil), l.hosts...)
}

// Name is the name the host was added with.
func (h *Host) Name() string { return h.name }

// Namespace is the name of the host's network namespace (for ip netns).
func (h *Host) Namespace() string { return h.ns }

// IP is the host's address on the lab network, without prefix length.
func (h *Host) IP() string { return h.ip }

// randomHex returns n random bytes as 2n hex characters.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
