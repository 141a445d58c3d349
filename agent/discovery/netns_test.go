//go:build linux

package discovery

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/internal/testlog"
)

// The tests here run real mDNS between network namespaces joined by a
// bridge that lives in a namespace of its own, so the host's network
// namespace is never touched. Each agent is this test binary re-executed
// under "ip netns exec" as TestHelperDiscovery: hashicorp/mdns starts its own
// goroutines, so a thread switched with setns would not hold them.

const helperEnv = "FLEETCAST_DISCOVERY_HELPER"

// helperSpec is what the parent passes to a helper agent.
type helperSpec struct {
	Self      Self
	Interface string
	Static    []string
	// Zero: 300ms, DefaultConfig's BrowseMax and Answers, 1m.
	BrowseInterval, BrowseMax, Expiry time.Duration
	Answers                           int
}

// helperReport is one JSON line a helper prints when its peers change.
type helperReport struct {
	Peers []Peer `json:"peers"` // Peers()
	All   []Peer `json:"all"`   // the whole table, other fleets included
}

// TestHelperDiscovery is the helper agent; it does nothing in a normal run.
func TestHelperDiscovery(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process for the netns tests")
	}
	if err := runHelper(spec); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// runHelper runs a Discovery until stdin closes, logging to stderr and
// printing a helperReport at start and at every change.
func runHelper(specJSON string) error {
	var spec helperSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return err
	}
	cfg := DefaultConfig()
	cfg.Interface, cfg.Static = spec.Interface, spec.Static
	cfg.BrowseInterval, cfg.Expiry = 300*time.Millisecond, time.Minute
	for _, v := range []struct{ to, from *time.Duration }{
		{&cfg.BrowseInterval, &spec.BrowseInterval}, {&cfg.BrowseMax, &spec.BrowseMax}, {&cfg.Expiry, &spec.Expiry},
	} {
		if *v.from != 0 {
			*v.to = *v.from
		}
	}
	if spec.Answers != 0 {
		cfg.Answers = spec.Answers
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := New(cfg, spec.Self, log)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { bufio.NewReader(os.Stdin).WriteTo(bytes.NewBuffer(nil)); cancel() }()
	go report(ctx, d)
	return d.Run(ctx)
}

// report prints a helperReport at start and whenever Peers() or the whole
// table (which Changed does not cover) changes.
func report(ctx context.Context, d *Discovery) {
	enc := json.NewEncoder(os.Stdout)
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	last := "-"
	for {
		r := helperReport{Peers: d.Peers(), All: d.all()}
		if sig := signature(r.Peers) + signature(r.All); sig != last {
			enc.Encode(r)
			last = sig
		}
		select {
		case <-d.Changed():
		case <-ticker.C:
		case <-ctx.Done():
			return
		}
	}
}

// all returns the whole peer table in order of Addr.
func (d *Discovery) all() []Peer {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Peer
	for _, p := range d.peers {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.Addr, b.Addr) })
	return out
}

// lab is a set of namespaces on one bridge, deleted in t.Cleanup.
type lab struct {
	t      *testing.T
	prefix string // unique per run
	subnet string // "198.18.N"
	bridge string // namespace of the bridge
}

func newLab(t *testing.T) *lab {
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		skipOrFail(t, "needs the ip command (iproute2)")
	}
	suffix := make([]byte, 3)
	rand.Read(suffix)
	n, _ := rand.Int(rand.Reader, big.NewInt(256))
	l := &lab{t: t, prefix: "fcd" + hex.EncodeToString(suffix), subnet: fmt.Sprintf("198.18.%d", n.Int64())}
	l.bridge = l.addNS("br")
	l.ip("-n", l.bridge, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	l.ip("-n", l.bridge, "link", "set", "br0", "up")
	return l
}

func skipOrFail(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("FLEETCAST_REQUIRE_NETNS") == "1" {
		t.Fatalf("%s, and FLEETCAST_REQUIRE_NETNS=1", why)
	}
	t.Skipf("skipping: %s (set FLEETCAST_REQUIRE_NETNS=1 to fail instead)", why)
}

func (l *lab) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// addNS creates a namespace and schedules its deletion.
func (l *lab) addNS(name string) string {
	l.t.Helper()
	ns := l.prefix + "-" + name
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		skipOrFail(l.t, fmt.Sprintf("cannot create a network namespace: %v: %s", err, out))
	}
	l.t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			l.t.Errorf("delete namespace %s: %v: %s", ns, err, out)
		}
	})
	l.ip("-n", ns, "link", "set", "lo", "up")
	return ns
}

// addHost creates a namespace with eth0 on the bridge at subnet.host and
// returns the namespace and address. Without route it has no default route,
// so no IPv4 multicast route; noIPv6 disables IPv6 in it.
func (l *lab) addHost(name string, host int, route, noIPv6 bool) (ns, addr string) {
	l.t.Helper()
	ns = l.addNS(name)
	if noIPv6 {
		l.ip("netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	l.ip("-n", l.bridge, "link", "add", "v"+name, "type", "veth", "peer", "name", "eth0", "netns", ns)
	l.ip("-n", l.bridge, "link", "set", "v"+name, "master", "br0", "up")
	addr = fmt.Sprintf("%s.%d", l.subnet, host)
	l.ip("-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
	l.ip("-n", ns, "link", "set", "eth0", "up")
	if route {
		l.ip("-n", ns, "route", "add", "default", "dev", "eth0")
	}
	return ns, addr
}

// agent is a helper process and what it last reported.
type agent struct {
	mu     sync.Mutex
	last   helperReport
	stderr testlog.Buffer
}

func (a *agent) report() helperReport {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last
}

// start runs a helper agent in ns; t.Cleanup kills its process group.
func (l *lab) start(ns string, spec helperSpec) *agent {
	l.t.Helper()
	js, _ := json.Marshal(spec)
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestHelperDiscovery$")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(js))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	a := &agent{}
	cmd.Stderr = &a.stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("start helper in %s: %v", ns, err)
	}
	l.t.Cleanup(func() {
		stdin.Close()
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		if l.t.Failed() {
			r, _ := json.Marshal(a.report())
			l.t.Logf("agent %s in %s last reported %s; its log:\n%s", spec.Self.AgentID, ns, r, a.stderr.String())
		}
	})
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var r helperReport
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				a.mu.Lock()
				a.last = r
				a.mu.Unlock()
			}
		}
	}()
	return a
}

func hasID(peers []Peer, id string) bool {
	return slices.ContainsFunc(peers, func(p Peer) bool { return p.ID == id })
}

func TestNetnsMDNS(t *testing.T) {
	l := newLab(t)
	nsA, ipA := l.addHost("a", 1, true, false)
	nsB, ipB := l.addHost("b", 2, true, false)
	nsC, _ := l.addHost("c", 3, true, true) // another fleet, IPv4 only
	start := time.Now()
	a := l.start(nsA, helperSpec{Self: Self{AgentID: idA, FleetID: fleetX, Proto: "fleetcast-peer/1", Port: 7001}})
	b := l.start(nsB, helperSpec{Self: Self{AgentID: idB, FleetID: fleetX, Proto: "fleetcast-peer/1", Port: 7002}, Interface: "eth0"})
	c := l.start(nsC, helperSpec{Self: Self{AgentID: idC, FleetID: fleetY, Proto: "fleetcast-peer/1", Port: 7003}})
	waitFor(t, "A and B to see each other and C", 20*time.Second, func() bool {
		ra, rb, rc := a.report(), b.report(), c.report()
		return hasID(ra.Peers, idB) && hasID(rb.Peers, idA) &&
			hasID(ra.All, idC) && hasID(rb.All, idC) && hasID(rc.All, idA)
	})
	t.Logf("agents found each other in %v", time.Since(start).Round(time.Millisecond))
	check := func(name string, got []Peer, want Peer) {
		t.Helper()
		if len(got) != 1 || got[0].ID != want.ID || got[0].FleetID != want.FleetID ||
			got[0].Addr != want.Addr || got[0].Proto != "fleetcast-peer/1" || got[0].Source != SourceMDNS {
			t.Errorf("%s sees %+v; want only %+v (not C of another fleet, not itself)", name, got, want)
		}
	}
	check("A", a.report().Peers, Peer{ID: idB, FleetID: fleetX, Addr: ipB + ":7002"})
	check("B", b.report().Peers, Peer{ID: idA, FleetID: fleetX, Addr: ipA + ":7001"})
	if rc := c.report(); len(rc.Peers) != 0 {
		t.Errorf("C of another fleet sees %+v; want nobody", rc.Peers)
	}
	for name, ag := range map[string]*agent{"A": a, "B": b, "C": c} {
		if strings.Contains(ag.stderr.String(), "level=WARN") {
			t.Errorf("agent %s warned:\n%s", name, ag.stderr.String())
		}
	}
}

func TestNetnsNoMulticastRoute(t *testing.T) {
	l := newLab(t)
	ns, _ := l.addHost("n", 4, false, true)
	static := l.subnet + ".9:7000"
	a := l.start(ns, helperSpec{Self: Self{AgentID: idA, FleetID: fleetX, Proto: "fleetcast-peer/1", Port: 7001}, Static: []string{static}})
	waitFor(t, "three failed browses", 20*time.Second, func() bool {
		return strings.Count(a.stderr.String(), "mDNS still unavailable") >= 2
	})
	log := a.stderr.String()
	if n := strings.Count(log, "level=WARN"); n != 1 || !strings.Contains(log, "mDNS unavailable") {
		t.Errorf("%d warnings; want exactly one saying mDNS is unavailable:\n%s", n, log)
	}
	if got := addrs(a.report().Peers); got != static {
		t.Errorf("Peers = %q; want the static peer %s", got, static)
	}
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "level=WARN") {
			t.Logf("the warning: %s", line)
		}
	}
}
