//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fleetcast/fleetcast/internal/netlab"
)

// The scale mode (issue 13): for each N, N real agents with the fleet
// secret install a small release, then the lab measures what the idle
// fleet costs over -idle: TCP connections, LAN traffic, mDNS packets,
// CPU and memory.

const (
	// followDegree is how many peers an idle agent follows at most with
	// the default peer_degree (32, halved: docs/CONFIG.md); the lab waits
	// until every agent follows min(N-1, followDegree) before it publishes.
	// Older agents follow every peer.
	followDegree = 16
	// discoveryTimeout bounds that wait.
	discoveryTimeout = 90 * time.Second
	// connSample is how often the idle window samples the connections.
	connSample = time.Second
	// maxProcNet bounds a read of /proc/PID/net/tcp or tcp6.
	maxProcNet = 4 << 20
)

// runScale measures each N of -n in turn, on a lab of its own, and writes
// the report.
func runScale(ctx context.Context, o *options, log *slog.Logger) error {
	rep := &scaleReport{Options: o.scaleSummary(), Idle: o.idle}
	for _, n := range o.ns {
		log.Info("scale: start", "agents", n, "idle", o.idle)
		res, err := scaleOne(ctx, o, n, log)
		if err != nil {
			return fmt.Errorf("scale, N=%d: %w", n, err)
		}
		log.Info("scale: done", "agents", n, "installed", res.Installed, "problems", len(res.Problems))
		rep.Runs = append(rep.Runs, res)
	}
	return rep.write(o, os.Stdout)
}

// scaleOne builds a lab of n agent hosts, rolls a release out, measures the
// idle window and removes the lab, also when it fails half-way.
func scaleOne(ctx context.Context, o *options, n int, log *slog.Logger) (res scaleResult, err error) {
	res.N = n
	on := *o
	on.n = n
	e, err := newEnv(ctx, &on, log)
	defer func() {
		if e != nil {
			err = errors.Join(err, e.close())
		}
	}()
	if err != nil {
		return res, err
	}
	log.Info("scale: lab ready", "agents", n, "bridge", e.lab.Bridge())
	// Counting from before the agents start: the whole run's mDNS packets
	// (their browses at start) as well as the window's.
	counter, err := startMDNSCounter(e.lab.Bridge())
	if err != nil {
		return res, err
	}
	defer func() {
		res.MDNSPacketsRun = counter.count()
		if cerr := counter.close(); err == nil {
			err = cerr
		}
	}()
	f, err := newFleet(ctx, e, &on, fmt.Sprintf("scale-%d", n))
	if err != nil {
		return res, err
	}
	if !o.keep {
		defer os.RemoveAll(f.dir)
	}
	defer func() { err = errors.Join(err, f.stopAll()) }()
	if err := f.install(ctx, &res); err != nil {
		return res, err
	}
	f.client.CloseIdleConnections() // the lab's own status connections are not the fleet's
	if o.settle > 0 {
		// Let the rollout's own traffic end (chunk connections, agents
		// going back to their bounded peer sets) before the window.
		log.Info("scale: settling before the idle window", "agents", len(f.agents), "settle", o.settle)
		if err := sleep(ctx, o.settle); err != nil {
			return res, err
		}
	}
	if err := f.measureIdle(ctx, counter, o.idle, &res); err != nil {
		return res, err
	}
	for i, a := range f.agents {
		res.Agents[i].Follows = f.follows(ctx, a, f.agents)
	}
	return res, nil
}

// install starts every agent, waits until each follows as many peers as it
// will, publishes release 1 and waits until every agent installed it.
func (f *fleet) install(ctx context.Context, res *scaleResult) error {
	start := time.Now()
	for _, a := range f.agents {
		if err := f.start(a); err != nil {
			return err
		}
	}
	if err := f.waitPeers(ctx, f.agents, min(len(f.agents)-1, followDegree), discoveryTimeout); err != nil {
		return err
	}
	res.Discovery = time.Since(start)
	if err := f.publish(ctx, f.e.artifact); err != nil {
		return err
	}
	published := time.Now()
	done, err := f.rollout(ctx, f.agents, 1, published, nil)
	if err != nil {
		return err
	}
	res.Rollout = time.Since(published)
	want, err := fileSHA256(f.e.artifact)
	if err != nil {
		return err
	}
	hosts, problems := f.results(f.agents, done, 1, want)
	res.Problems = append(res.Problems, problems...)
	for _, h := range hosts {
		if h.Err == "" {
			res.Installed++
		}
	}
	return nil
}

// idleReading is the fleet's counters at one moment.
type idleReading struct {
	at      time.Time
	cpu     []time.Duration // per agent, user + system
	sent    int64           // bytes every host (agents and origin) sent into the bridge
	mdns    int64
	machine cpuSample
}

// measureIdle reads the counters, samples every agent's connections each
// connSample until window has passed, reads the counters again and fills
// res with the differences, per agent and in all.
func (f *fleet) measureIdle(ctx context.Context, counter *mdnsCounter, window time.Duration, res *scaleResult) error {
	pids := make([]int, len(f.agents))
	for i, a := range f.agents {
		pid, err := f.agentPID(a)
		if err != nil {
			return err
		}
		pids[i] = pid
	}
	r0, err := f.readIdle(pids, counter)
	if err != nil {
		return err
	}
	samples := make([][]int, len(f.agents))
	end := r0.at.Add(window)
	for {
		for i, a := range f.agents {
			if err := a.running(); err != nil {
				return err
			}
			n, err := tcpEstablished(pids[i])
			if err != nil {
				return err
			}
			samples[i] = append(samples[i], n)
		}
		left := time.Until(end)
		if left <= 0 {
			break
		}
		if err := sleep(ctx, min(connSample, left)); err != nil {
			return err
		}
	}
	r1, err := f.readIdle(pids, counter)
	if err != nil {
		return err
	}
	res.Window = r1.at.Sub(r0.at)
	res.LANBytes = r1.sent - r0.sent
	res.MDNSPackets = r1.mdns - r0.mdns
	res.MachineCPU = r0.machine.busyUntil(r1.machine)
	for i, a := range f.agents {
		rss, err := statusKiB(pids[i], "VmRSS")
		if err != nil {
			return err
		}
		res.Agents = append(res.Agents, scaleAgent{Host: a.host.Name(), Conns: median(samples[i]),
			ConnsMin: slices.Min(samples[i]), ConnsMax: slices.Max(samples[i]),
			CPU: r1.cpu[i] - r0.cpu[i], RSS: rss << 10})
	}
	return nil
}

// readIdle reads every counter the idle window measures.
func (f *fleet) readIdle(pids []int, counter *mdnsCounter) (idleReading, error) {
	r := idleReading{at: time.Now(), mdns: counter.count(), machine: readCPU()}
	for _, pid := range pids {
		cpu, err := processCPU(pid)
		if err != nil {
			return r, err
		}
		r.cpu = append(r.cpu, cpu)
	}
	for _, h := range append([]*netlab.Host{f.e.origin}, f.e.hosts...) {
		n, err := h.TxBytes()
		if err != nil {
			return r, err
		}
		r.sent += n
	}
	return r, nil
}

// agentPID is the agent's process id: the process that ip netns exec
// started became, through unshare and sh's exec, the agent (fleet.start);
// checked here by its command name.
func (f *fleet) agentPID(a *labAgent) (int, error) {
	pid := a.cmd.Process.Pid
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return 0, fmt.Errorf("agent on %s: %w", a.host.Name(), err)
	}
	want := filepath.Base(f.o.fleetcast)
	if got := strings.TrimSpace(string(comm)); !strings.HasPrefix(want, got) || got == "" {
		return 0, fmt.Errorf("agent on %s: process %d is %q, not the agent %q", a.host.Name(), pid, got, want)
	}
	return pid, nil
}

// tcpEstablished counts the established TCP connections, over IPv4 and
// IPv6, of the network namespace of process pid: /proc/PID/net shows the
// process's namespace. An agent's namespace holds the agent alone, so
// these are its connections, each counted once (a connection between two
// agents counts once at each end).
func tcpEstablished(pid int) (int, error) {
	n := 0
	for _, name := range []string{"tcp", "tcp6"} {
		b, err := readBounded(fmt.Sprintf("/proc/%d/net/%s", pid, name), maxProcNet)
		if err != nil {
			return 0, err
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Scan() // the header
		for sc.Scan() {
			// "sl local_address rem_address st ...": state 01 is ESTABLISHED.
			if f := strings.Fields(sc.Text()); len(f) > 3 && f[3] == "01" {
				n++
			}
		}
	}
	return n, nil
}
