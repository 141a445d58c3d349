//go:build linux

package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fleetcast/fleetcast/internal/netlab"
)

// scenarios are the fleetcast runs fleetlab knows, in the order they run.
var scenarios = []string{"base", "churn", "hostile", "outage", "late", "delta"}

// runFleetcast runs one fleetcast scenario on a fresh fleet (new origin
// directory, new agent data) over the lab's topology.
func runFleetcast(ctx context.Context, e *env, o *options, scenario string) (res runResult, err error) {
	res = runResult{System: "fleetcast", Scenario: scenario}
	f, err := newFleet(ctx, e, o, "fleetcast-"+scenario)
	if err != nil {
		return res, err
	}
	defer func() {
		if err := f.stopAll(); err != nil {
			res.Problems = append(res.Problems, err.Error())
		}
	}()
	early, late := f.agents, f.agents[:0]
	if scenario == "late" {
		k := max(1, len(f.agents)/4)
		early, late = f.agents[:len(f.agents)-k], f.agents[len(f.agents)-k:]
	}
	for _, a := range early {
		if err := f.start(a); err != nil {
			return res, err
		}
	}
	w, stop, err := startWatch(ctx, e, o, f, scenario)
	if err != nil {
		return res, err
	}
	defer stop()
	if w != nil {
		defer func() { res.Notes = append(res.Notes, w.note(f)) }()
	}
	if err := f.waitPeers(ctx, early, min(len(early)-1, followDegree), 60*time.Second); err != nil {
		return res, err
	}
	if scenario == "delta" {
		return f.delta(ctx, res)
	}
	tx0 := e.originTx()
	if err := f.publish(ctx, e.artifact); err != nil {
		return res, err
	}
	res.Start = time.Now()
	cpu := readCPU()
	done, err := f.rollout(ctx, early, 1, res.Start, w)
	res.MachineCPU = cpu.busySince()
	if err == nil && len(late) > 0 {
		done, err = f.lateJoin(ctx, late, done, &res)
	}
	res.Elapsed = time.Since(res.Start)
	res.OriginEgress = e.originTx() - tx0
	return f.finish(res, done, 1, e.artifact, err)
}

// startWatch starts what the scenario does during the rollout; nil for the
// scenarios that do nothing then. stop ends what it started.
func startWatch(ctx context.Context, e *env, o *options, f *fleet, scenario string) (w watch, stop func(), err error) {
	switch scenario {
	case "hostile":
		h, err := startHostile(ctx, e, o, f)
		if err != nil {
			return nil, nil, err
		}
		return h, h.stop, nil
	case "churn":
		c := &churn{leave: f.agents[:max(1, len(f.agents)/4)], at: o.tmin() * 3 / 10, away: max(2*time.Second, o.tmin()/5)}
		return c, func() {}, nil
	case "outage":
		out := &outage{}
		return out, func() { out.restore(e) }, nil
	}
	return nil, func() {}, nil
}

// finish stops the agents, checks their installed files and fills res.
func (f *fleet) finish(res runResult, done map[*labAgent]time.Duration, seq uint64, artifact string, runErr error) (runResult, error) {
	if err := f.stopAll(); err != nil {
		res.Problems = append(res.Problems, err.Error())
	}
	want, err := fileSHA256(artifact)
	if err != nil {
		return res, err
	}
	var problems []string
	res.Hosts, problems = f.results(f.agents, done, seq, want)
	res.Problems = append(res.Problems, problems...)
	res.Notes = append(res.Notes, f.bans()...)
	if runErr != nil {
		res.Problems = append(res.Problems, runErr.Error())
	}
	return res, nil
}

// lateJoin starts the late agents once the others installed, and measures
// them from their own start.
func (f *fleet) lateJoin(ctx context.Context, late []*labAgent, done map[*labAgent]time.Duration, res *runResult) (map[*labAgent]time.Duration, error) {
	tx := f.e.originTx()
	start := time.Now()
	for _, a := range late {
		if err := f.start(a); err != nil {
			return done, err
		}
	}
	lateDone, err := f.rollout(ctx, late, 1, start, nil)
	var last time.Duration
	for a, d := range lateDone {
		done[a] = d
		last = max(last, d)
	}
	res.Notes = append(res.Notes, fmt.Sprintf("%d late joiners started after the other %d installed; the last installed %.2f s after its start; the origin sent %s meanwhile",
		len(late), len(f.agents)-len(late), last.Seconds(), bytesText(f.e.originTx()-tx)))
	return done, err
}

// delta installs release 1, then measures the rollout of release 2, which
// has a fraction of its bytes changed.
func (f *fleet) delta(ctx context.Context, res runResult) (runResult, error) {
	if err := f.publish(ctx, f.e.artifact); err != nil {
		return res, err
	}
	if _, err := f.rollout(ctx, f.agents, 1, time.Now(), nil); err != nil {
		return res, err
	}
	rel2 := filepath.Join(f.dir, "artifact-2.bin")
	changed, err := mutate(f.e.artifact, rel2, f.o.deltaFrac, f.o.seed)
	if err != nil {
		return res, err
	}
	tx0 := f.e.originTx()
	if err := f.publish(ctx, rel2); err != nil {
		return res, err
	}
	res.Start = time.Now()
	cpu := readCPU()
	done, err := f.rollout(ctx, f.agents, 2, res.Start, nil)
	res.MachineCPU = cpu.busySince()
	res.Elapsed = time.Since(res.Start)
	res.OriginEgress = f.e.originTx() - tx0
	res.Changed = changed
	res, ferr := f.finish(res, done, 2, rel2, err)
	var moved int64
	for _, h := range res.Hosts {
		moved += max(h.OriginBytes, 0) + max(h.PeerBytes, 0)
	}
	res.Notes = append(res.Notes, fmt.Sprintf("release 2 changed %s (%.1f%%) in one run; the origin sent %s (%.1fx the change); all agents together fetched %s (%.1fx the change per agent)",
		bytesText(changed), 100*f.o.deltaFrac, bytesText(res.OriginEgress), float64(res.OriginEgress)/float64(changed),
		bytesText(moved), float64(moved)/float64(changed)/float64(len(f.agents))))
	return res, ferr
}

// churn makes a quarter of the agents crash (SIGKILL) at a time into the
// rollout and come back after away.
type churn struct {
	leave    []*labAgent
	at, away time.Duration
	left     time.Duration // when they left; 0 before
	back     time.Duration // when they came back; 0 before
}

func (c *churn) note(f *fleet) string {
	if c.left == 0 {
		return "the rollout ended before any agent left"
	}
	s := fmt.Sprintf("%d of %d agents crashed (SIGKILL) %.2f s into the rollout", len(c.leave), len(f.agents), c.left.Seconds())
	if c.back > 0 {
		s += fmt.Sprintf(" and were restarted %.2f s later", (c.back - c.left).Seconds())
	}
	return s
}

func (c *churn) tick(ctx context.Context, f *fleet, since time.Duration) error {
	switch {
	case c.left == 0 && since >= c.at:
		for _, a := range c.leave {
			f.stop(a, syscall.SIGKILL)
			f.e.log.Info("agent left (SIGKILL)", a.logAttrs())
		}
		c.left = since
	case c.left > 0 && c.back == 0 && since >= c.left+c.away:
		for _, a := range c.leave {
			if err := f.start(a); err != nil {
				return err
			}
			f.e.log.Info("agent came back", a.logAttrs())
		}
		c.back = since
	}
	return nil
}

// outage takes the origin's link down once the fleet together holds every
// chunk of the release: the origin has sent one copy.
type outage struct {
	down time.Duration // when the origin went down; 0 before
}

func (o *outage) note(f *fleet) string {
	if o.down == 0 {
		return "the fleet never held every chunk: the origin stayed up"
	}
	return fmt.Sprintf("the origin's link went down %.2f s into the rollout, when the agents together held every chunk; the rest came from peers", o.down.Seconds())
}

func (o *outage) tick(ctx context.Context, f *fleet, since time.Duration) error {
	if o.down > 0 {
		return nil
	}
	have, total := f.union(ctx)
	if total == 0 || have < total {
		return nil
	}
	f.e.log.Info("origin goes down: the fleet holds every chunk", "after", since.Round(time.Millisecond))
	o.down = since
	f.e.srv.SetKeepAlivesEnabled(false)
	return f.e.origin.SetLinkUp(false)
}

func (o *outage) restore(e *env) {
	if o.down > 0 {
		if err := e.origin.SetLinkUp(true); err != nil {
			e.log.Warn("origin link up", slog.String("reason", err.Error()))
		}
		e.srv.SetKeepAlivesEnabled(true)
	}
}

// hostile is a fleet member (it holds the fleet secret) that advertises every
// chunk and serves corrupt bytes: the product's internal/cmd/hostilepeer.
type hostile struct {
	addr   string
	cancel context.CancelFunc
	done   chan error
}

func startHostile(ctx context.Context, e *env, o *options, f *fleet) (*hostile, error) {
	h, err := e.lab.AddHost("evil", &netlab.Shape{EgressBits: o.rates.upload, IngressBits: o.rates.download})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	hp := &hostile{addr: net.JoinHostPort(h.IP(), agentPort), cancel: cancel, done: make(chan error, 1)}
	log, err := os.Create(filepath.Join(f.dir, "hostile.log"))
	if err != nil {
		cancel()
		return nil, err
	}
	defer log.Close()
	cmd := h.Command(ctx, o.hostilepeer, "-origin", filepath.Join(f.dir, "origin"), "-product", labProduct, "-channel", labChannel,
		"-listen", hp.addr, "-fleet-secret", filepath.Join(o.keys, "fleet.secret"), "-mode", "corrupt")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("start hostile peer: %w", err)
	}
	go func() { hp.done <- cmd.Wait() }()
	return hp, nil
}

// note says how many agents banned the hostile peer.
func (h *hostile) note(f *fleet) string {
	n := 0
	for _, a := range f.agents {
		for _, p := range a.st.Peers {
			if p.Addr == h.addr && p.Banned {
				n++
			}
		}
	}
	return fmt.Sprintf("hostile peer %s banned by %d of %d agents", h.addr, n, len(f.agents))
}

func (h *hostile) tick(ctx context.Context, f *fleet, since time.Duration) error { return nil }

func (h *hostile) stop() {
	h.cancel()
	<-h.done
}
