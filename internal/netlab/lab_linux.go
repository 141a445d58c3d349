package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// maxHosts is the number of host addresses in a lab's /24 (.254 is the bridge).
	maxHosts = 253
	// subnetTries bounds the attempts to find a /24 no other lab uses.
	subnetTries = 20
	// netnsDir is where ip netns keeps its named namespaces.
	netnsDir = "/run/netns"
	// killWait bounds the wait for a host's processes to die in Close.
	killWait = 5 * time.Second
	// tbfLatency is how long a packet may wait in a shaped queue.
	tbfLatency = "100ms"
	// minBurst is the least token bucket size of a shaped link, in bytes:
	// above a 64 KiB GSO packet, so the shaper never has to split one.
	minBurst = 64 << 10
)

var hostName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// Available reports why labs cannot be built here, or nil: it needs Linux,
// root, the ip and tc commands, and a network namespace it can create.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("netlab: needs root to create network namespaces")
	}
	for _, cmd := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(cmd); err != nil {
			return fmt.Errorf("netlab: needs %s (iproute2): %w", cmd, err)
		}
	}
	ns := "fcnetlab-check-" + randomHex(4)
	if err := ip("netns", "add", ns); err != nil {
		return fmt.Errorf("netlab: cannot create a network namespace: %w", err)
	}
	return ip("netns", "del", ns)
}

// New creates a lab: a bridge named fcb<6 hex> in the root namespace with
// address 198.18.X.254/24, X random among the /24s no interface of this
// machine uses yet. prefix starts the name of every host's namespace.
func New(prefix string) (*Lab, error) {
	if !hostName.MatchString(prefix) {
		return nil, fmt.Errorf("netlab: lab prefix %q: want 1-32 of [a-z0-9-]", prefix)
	}
	l := &Lab{prefix: prefix, id: randomHex(3)}
	l.bridge = "fcb" + l.id
	if err := ip("link", "add", "name", l.bridge, "type", "bridge", "mcast_snooping", "0"); err != nil {
		return nil, fmt.Errorf("netlab: create bridge: %w", err)
	}
	if err := l.claimSubnet(); err != nil {
		ip("link", "del", l.bridge)
		return nil, err
	}
	if err := ip("link", "set", l.bridge, "up"); err != nil {
		ip("link", "del", l.bridge)
		return nil, fmt.Errorf("netlab: bridge up: %w", err)
	}
	return l, nil
}

// claimSubnet gives the bridge 198.18.X.254/24 for a random X that no other
// interface has an address in, checking again after adding it in case a
// parallel run picked the same X at the same moment.
func (l *Lab) claimSubnet() error {
	for range subnetTries {
		used, err := usedSubnets()
		if err != nil {
			return err
		}
		x := 1 + rand.IntN(250)
		if len(used[x]) > 0 {
			continue
		}
		addr := fmt.Sprintf("198.18.%d.254/24", x)
		if err := ip("addr", "add", addr, "dev", l.bridge); err != nil {
			return fmt.Errorf("netlab: bridge address: %w", err)
		}
		if used, err = usedSubnets(); err == nil && len(used[x]) == 1 && used[x][l.bridge] {
			l.subnet = x
			return nil
		}
		ip("addr", "del", addr, "dev", l.bridge)
	}
	return errors.New("netlab: found no free /24 in 198.18.0.0/16 for the lab")
}

// usedSubnets returns, for each X, the root namespace's interfaces that
// have an address or a route within 198.18.X.0/24.
func usedSubnets() (map[int]map[string]bool, error) {
	used := make(map[int]map[string]bool)
	for _, args := range [][]string{{"-o", "-4", "addr", "show"}, {"-o", "-4", "route", "show", "table", "all"}} {
		out, err := ipOutput(args...)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			dev := lineDevice(args[2], f)
			for _, w := range f {
				rest, ok := strings.CutPrefix(w, "198.18.")
				if !ok {
					continue
				}
				x, _, _ := strings.Cut(rest, ".")
				if n, err := strconv.Atoi(x); err == nil {
					if used[n] == nil {
						used[n] = make(map[string]bool)
					}
					used[n][dev] = true
				}
			}
		}
	}
	return used, nil
}

// lineDevice finds the interface in one line of "ip -o addr" ("1: lo inet
// ...") or "ip -o route" ("... dev eth0 ...") output.
func lineDevice(kind string, f []string) string {
	if kind == "addr" {
		if len(f) > 1 {
			return f[1]
		}
		return ""
	}
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "dev" {
			return f[i+1]
		}
	}
	return ""
}

// AddHost creates namespace "<prefix>-<lab id>-<name>" attached to the
// bridge: its eth0 has the next free address 198.18.X.n/24 and the default
// route (so that multicast, e.g. mDNS, leaves through eth0), lo is up.
// shape, when not nil, limits the host's rates.
func (l *Lab) AddHost(name string, shape *Shape) (*Host, error) {
	if !hostName.MatchString(name) {
		return nil, fmt.Errorf("netlab: host name %q: want 1-32 of [a-z0-9-]", name)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, errors.New("netlab: lab is closed")
	}
	n := len(l.hosts) + 1
	if n > maxHosts {
		l.mu.Unlock()
		return nil, fmt.Errorf("netlab: a lab holds at most %d hosts", maxHosts)
	}
	h := &Host{lab: l, name: name, ns: l.prefix + "-" + l.id + "-" + name,
		veth: "fcv" + l.id + strconv.Itoa(n), ip: fmt.Sprintf("198.18.%d.%d", l.subnet, n)}
	l.hosts = append(l.hosts, h) // so that Close removes it whatever happens below
	l.mu.Unlock()
	if err := h.setup(shape); err != nil {
		return nil, fmt.Errorf("netlab: add host %s: %w", name, err)
	}
	if err := l.raiseNeighbours(n); err != nil {
		return nil, fmt.Errorf("netlab: add host %s: %w", name, err)
	}
	return h, nil
}

func (h *Host) setup(shape *Shape) error {
	peer := "fcp" + strings.TrimPrefix(h.veth, "fcv")
	steps := [][]string{
		{"netns", "add", h.ns},
		{"link", "add", h.veth, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", h.ns},
		{"link", "set", h.veth, "master", h.lab.bridge},
		{"link", "set", h.veth, "up"},
		{"-n", h.ns, "link", "set", peer, "name", "eth0"},
		{"-n", h.ns, "addr", "add", h.ip + "/24", "dev", "eth0"},
		{"-n", h.ns, "link", "set", "eth0", "up"},
		{"-n", h.ns, "link", "set", "lo", "up"},
		{"-n", h.ns, "route", "add", "default", "dev", "eth0"},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return err
		}
	}
	if shape == nil {
		return nil
	}
	if err := tbf(h.ns, "eth0", shape.EgressBits); err != nil {
		return fmt.Errorf("shape egress: %w", err)
	}
	if err := tbf("", h.veth, shape.IngressBits); err != nil {
		return fmt.Errorf("shape ingress: %w", err)
	}
	return nil
}

// tbf limits dev's egress (in namespace ns; "" is the root namespace) to
// bits per second with a token bucket filter; 0 does nothing.
func tbf(ns, dev string, bits int64) error {
	if bits <= 0 {
		return nil
	}
	burst := max(bits/8/100, minBurst) // 10 ms at the rate
	args := []string{"qdisc", "replace", "dev", dev, "root", "tbf",
		"rate", strconv.FormatInt(bits, 10) + "bit", "burst", strconv.FormatInt(burst, 10), "latency", tbfLatency}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	return run("tc", args...)
}

// Command returns a command that runs name inside the host's namespace
// (ip netns exec), in a process group of its own. Cancelling ctx, and Lab.Close,
// kill the whole group.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.ns, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd) }
	h.mu.Lock()
	h.cmds = append(h.cmds, cmd)
	h.mu.Unlock()
	return cmd
}

// killGroup kills the process group of a started command that has not been
// waited for yet.
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	if err := cmd.Process.Signal(syscall.Signal(0)); errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// Listen listens on the host's network (addr must be an IP literal and
// port, e.g. h.IP()+":8080"); the listener can be used from any goroutine.
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := h.Do(func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// DialContext connects from the host's network to addr, an IP literal and
// port (a name would be resolved in another goroutine, outside the host).
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Do runs fn on an OS thread switched into the host's network namespace
// and returns its error. Sockets fn makes stay in the host's namespace and
// can be used from any goroutine afterwards; fn must not start goroutines
// that make sockets (name resolution does). The thread is switched back
// afterwards; if that fails it stays locked, so that Go retires it instead
// of running other goroutines in the host's namespace.
func (h *Host) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		restored, err := h.doLocked(fn)
		if restored {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// doLocked runs fn in the host's namespace on the current, locked thread and
// reports whether the thread is back in its own namespace.
func (h *Host) doLocked(fn func() error) (restored bool, err error) {
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return true, err
	}
	defer self.Close()
	target, err := os.Open(filepath.Join(netnsDir, h.ns))
	if err != nil {
		return true, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return true, fmt.Errorf("enter namespace %s: %w", h.ns, err)
	}
	err = fn()
	return unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil, err
}

// TxBytes returns the bytes the host has sent on eth0 (its upload): what
// the bridge side of its veth pair has received.
func (h *Host) TxBytes() (int64, error) { return readCounter(h.veth, "rx_bytes") }

// RxBytes returns the bytes the host has received on eth0 (its download).
func (h *Host) RxBytes() (int64, error) { return readCounter(h.veth, "tx_bytes") }

func readCounter(dev, name string) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/sys/class/net", dev, "statistics", name))
	if err != nil {
		return 0, fmt.Errorf("netlab: read %s counter: %w", name, err)
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// SetLinkUp connects the host to the bridge (true) or cuts it off (false),
// by setting the bridge side of its veth pair up or down. Its own eth0,
// address and routes stay as they are.
func (h *Host) SetLinkUp(up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return ip("link", "set", h.veth, state)
}

// Close kills every process in the lab's namespaces (those started with
// Command and any others), deletes the namespaces, veth pairs and the
// bridge. It may be called more than once; later calls return the first
// call's result.
func (l *Lab) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return l.err
	}
	l.closed = true
	var errs []error
	for _, h := range l.hosts {
		errs = append(errs, h.close())
	}
	if exists(filepath.Join("/sys/class/net", l.bridge)) {
		errs = append(errs, ip("link", "del", l.bridge))
	}
	errs = append(errs, l.restoreNeighbours())
	l.err = errors.Join(errs...)
	return l.err
}

func (h *Host) close() error {
	h.mu.Lock()
	for _, cmd := range h.cmds {
		killGroup(cmd)
	}
	h.mu.Unlock()
	var errs []error
	if exists(filepath.Join(netnsDir, h.ns)) {
		errs = append(errs, killNamespace(h.ns))
	}
	if exists(filepath.Join("/sys/class/net", h.veth)) {
		errs = append(errs, ip("link", "del", h.veth))
	}
	if exists(filepath.Join(netnsDir, h.ns)) {
		errs = append(errs, ip("netns", "del", h.ns))
	}
	return errors.Join(errs...)
}

// killNamespace kills every process in namespace ns and waits until none is
// left, so that deleting the namespace frees it.
func killNamespace(ns string) error {
	deadline := time.Now().Add(killWait)
	for {
		out, err := ipOutput("netns", "pids", ns)
		if err != nil {
			return err
		}
		pids := slices.DeleteFunc(strings.Fields(out), func(p string) bool { return p == strconv.Itoa(os.Getpid()) })
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %s in namespace %s survived SIGKILL", strings.Join(pids, " "), ns)
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func ip(args ...string) error { return run("ip", args...) }

func ipOutput(args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
