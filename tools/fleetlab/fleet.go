//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fleetcast/fleetcast/agent/fleettls"
	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/internal/netlab"
)

const (
	agentPort   = "7331"
	labProduct  = "labapp"
	labChannel  = "stable"
	maxStatus   = 4 << 20 // bytes of one GET /v1/status
	pollStatus  = 100 * time.Millisecond
	stopTimeout = 10 * time.Second
)

// fleet is one fleetcast run: its origin directory, agents and the client
// that reads their status as a fleet member.
type fleet struct {
	ctx    context.Context // the agents' processes end with it
	e      *env
	o      *options
	cli    fleetcastCLI // runs in the lab's key directory
	dir    string       // the run's directory
	target string       // the install target directory every agent sees
	agents []*labAgent
	client *http.Client
	scheme string
	seq    int
}

// labAgent is one fleetcast agent on one host.
type labAgent struct {
	host    *netlab.Host
	dir     string
	cmd     *exec.Cmd
	done    chan error
	started time.Time // of the current process
	peakRSS int64
	cpu     time.Duration
	st      peerproto.Status // the last status read
}

// newFleet prepares a run: an origin directory with the lab's root, served
// by the origin host, and an agent configuration for every host.
func newFleet(ctx context.Context, e *env, o *options, name string) (*fleet, error) {
	f := &fleet{ctx: ctx, e: e, o: o, cli: fleetcastCLI{bin: o.fleetcast, dir: o.keys}, dir: filepath.Join(e.dir, name)}
	f.target = filepath.Join(f.dir, "target")
	if err := os.MkdirAll(f.target, 0o755); err != nil {
		return nil, err
	}
	origin := filepath.Join(f.dir, "origin")
	if err := f.cli.run(ctx, "root", "publish", "--origin", origin, "root.json"); err != nil {
		return nil, err
	}
	e.setOriginDir(origin)
	fl, err := fleettls.Load(filepath.Join(o.keys, "fleet.secret"))
	if err != nil {
		return nil, err
	}
	f.client = &http.Client{Timeout: 3 * time.Second, Transport: fl.Transport(nil)}
	f.scheme = fl.Scheme()
	for _, h := range e.hosts {
		a := &labAgent{host: h, dir: filepath.Join(f.dir, h.Name())}
		if err := f.writeConfig(a); err != nil {
			return nil, err
		}
		f.agents = append(f.agents, a)
	}
	return f, nil
}

// writeConfig writes the agent's configuration: the lab's origin, root and
// fleet secret, mDNS, a short poll interval, and defaults for the rest.
func (f *fleet) writeConfig(a *labAgent) error {
	if err := os.MkdirAll(filepath.Join(a.dir, "target"), 0o755); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`data_dir = %q
origin = "%s/"
root = %q
listen = "%s:%s"
poll_interval = %q
allowed_installers = ["file"]
allowed_targets = [%q]
mdns = true
fleet_secret_file = %q

[[subscription]]
product = %q
channel = %q
`, filepath.Join(a.dir, "data"), f.e.originURL, filepath.Join(f.o.keys, "root.json"), a.host.IP(), agentPort,
		f.o.poll.String(), f.target+string(filepath.Separator), filepath.Join(f.o.keys, "fleet.secret"), labProduct, labChannel)
	return os.WriteFile(filepath.Join(a.dir, "agent.toml"), []byte(cfg), 0o644)
}

// publish publishes file as the next release of the lab's channel.
func (f *fleet) publish(ctx context.Context, file string) error {
	f.seq++
	args := []string{"publish", "--origin", filepath.Join(f.dir, "origin"), "--root", "root.json", "--key", "lab.key",
		"--product", labProduct, "--channel", labChannel, "--version", fmt.Sprintf("1.%d", f.seq),
		"--installer", "file", "--target", filepath.Join(f.target, "app"), "--mode", "0644",
		"--chunk-min", fmt.Sprint(f.o.chunkMin), "--chunk-avg", fmt.Sprint(f.o.chunkAvg), "--chunk-max", fmt.Sprint(f.o.chunkMax), file}
	return f.cli.run(ctx, args...)
}

// start runs the agent in its host's namespace, in a mount namespace of its
// own in which its target directory is bind-mounted over the shared target
// path, as separate machines each have their own disk.
func (f *fleet) start(a *labAgent) error {
	log, err := os.OpenFile(filepath.Join(a.dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	const script = `mount --bind "$1" "$2" && exec "$3" agent --config "$4" --log-format json`
	a.cmd = a.host.Command(f.ctx, "unshare", "-m", "--propagation", "private", "sh", "-c", script,
		"sh", filepath.Join(a.dir, "target"), f.target, f.o.fleetcast, filepath.Join(a.dir, "agent.toml"))
	a.cmd.Stdout, a.cmd.Stderr = log, log
	if err := a.cmd.Start(); err != nil {
		return fmt.Errorf("start agent on %s: %w", a.host.Name(), err)
	}
	a.started = time.Now()
	done := make(chan error, 1)
	a.done = done
	go func() { done <- a.cmd.Wait() }()
	return nil
}

// stop ends the agent with sig (SIGTERM: a clean stop; SIGKILL: a crash)
// and adds its resource use to the agent's totals. (The process that
// ip netns exec started became, through unshare and sh's exec, the agent.)
func (f *fleet) stop(a *labAgent, sig syscall.Signal) error {
	if a.done == nil {
		return nil
	}
	// The peak RSS from /proc before the process ends: the Maxrss of its
	// rusage would include fleetlab's own peak (Go starts it with vfork).
	if kib, err := statusKiB(a.cmd.Process.Pid, "VmHWM"); err == nil {
		a.peakRSS = max(a.peakRSS, kib<<10)
	}
	syscall.Kill(-a.cmd.Process.Pid, sig)
	var err error
	select {
	case err = <-a.done:
	case <-time.After(stopTimeout):
		syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
		<-a.done
		err = fmt.Errorf("agent on %s still running %s after %v", a.host.Name(), stopTimeout, sig)
	}
	a.done = nil
	if ru, ok := a.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		a.cpu += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if sig == syscall.SIGTERM && err != nil {
		return fmt.Errorf("agent on %s: %w", a.host.Name(), err)
	}
	return nil
}

// stopAll stops every running agent cleanly.
func (f *fleet) stopAll() error {
	var errs []error
	for _, a := range f.agents {
		errs = append(errs, f.stop(a, syscall.SIGTERM))
	}
	return errors.Join(errs...)
}

// running reports an error when the agent's process has ended.
func (a *labAgent) running() error {
	if a.done == nil {
		return nil
	}
	select {
	case err := <-a.done:
		a.done = nil
		return fmt.Errorf("agent on %s exited: %v (log: %s)", a.host.Name(), err, filepath.Join(a.dir, "agent.log"))
	default:
		return nil
	}
}

// status reads the agent's status; false when it does not answer.
func (f *fleet) status(ctx context.Context, a *labAgent) bool {
	url := f.scheme + "://" + net.JoinHostPort(a.host.IP(), agentPort) + "/v1/status"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStatus+1))
	if err != nil || len(body) > maxStatus || resp.StatusCode != http.StatusOK {
		return false
	}
	var st peerproto.Status
	if json.Unmarshal(body, &st) != nil {
		return false
	}
	a.st = st
	return true
}

// installed is the sequence the agent last reported installed.
func (a *labAgent) installed() uint64 {
	if len(a.st.Subscriptions) != 1 {
		return 0
	}
	return a.st.Subscriptions[0].InstalledSequence
}

// transfer is the agent's last transfer when it was of sequence seq.
func (a *labAgent) transfer(seq uint64) *peerproto.Transfer {
	if len(a.st.Subscriptions) != 1 || a.st.Subscriptions[0].LastTransferSequence != seq {
		return nil
	}
	return a.st.Subscriptions[0].LastTransfer
}

// waitPeers waits until every running agent follows want of the others
// (len(agents)-1: every other one; see followDegree).
func (f *fleet) waitPeers(ctx context.Context, agents []*labAgent, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		short := []string{}
		for _, a := range agents {
			if err := a.running(); err != nil {
				return err
			}
			if n := f.follows(ctx, a, agents); n < want {
				short = append(short, fmt.Sprintf("%s follows %d", a.host.Name(), n))
			}
		}
		if len(short) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("agents did not find each other over mDNS within %s: %s", timeout, strings.Join(short, ", "))
		}
		if err := sleep(ctx, pollStatus); err != nil {
			return err
		}
	}
}

// follows counts the other agents that a follows (knows by id).
func (f *fleet) follows(ctx context.Context, a *labAgent, agents []*labAgent) int {
	if !f.status(ctx, a) {
		return 0
	}
	n := 0
	for _, p := range a.st.Peers {
		for _, o := range agents {
			if o != a && p.ID != "" && strings.HasPrefix(p.Addr, o.host.IP()+":") {
				n++
			}
		}
	}
	return n
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// logAttrs are the attributes of the agent in log lines.
func (a *labAgent) logAttrs() slog.Attr { return slog.String("host", a.host.Name()) }
