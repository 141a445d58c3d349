package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/fleetcast/fleetcast/agent/fetch"
	"github.com/fleetcast/fleetcast/agent/swarm"
	"github.com/fleetcast/fleetcast/manifest"
)

// params is one simulated rollout.
type params struct {
	N, LANs       int     // agents in all, split evenly among LANs
	Size          int64   // artifact bytes
	OriginRate    float64 // bytes/s, shared by every LAN
	PeerRate      float64 // bytes/s up and down, each agent
	Latency       time.Duration
	OriginLatency time.Duration
	Degree        int // 0: follow every LAN peer up to maxRolloutFollows, as an assembling agent does; else follow half of it (bounded sets during the rollout)
	StartSpread   time.Duration
	Seed          uint64

	// The agent's configuration (agent/config defaults).
	Grace       time.Duration
	OriginConns int
	PeerConns   int
	PerPeer     int
	MaxUploads  int
	MinRate     int64
}

func defaultParams() params {
	return params{N: 8, LANs: 1, Size: 128 << 20, OriginRate: 40e6 / 8, PeerRate: 400e6 / 8,
		Latency: 200 * time.Microsecond, OriginLatency: 200 * time.Microsecond, Degree: 0, Seed: 1,
		Grace: 3 * time.Second, OriginConns: 4, PeerConns: 8, PerPeer: 2, MaxUploads: 16, MinRate: 32 << 10}
}

// Protocol limits of agent/peers.go and agent/peer_server.go.
const (
	minStateGap       = 0.020 // s between two states of one peer
	redrawEvery       = 60.0  // s
	maxRolloutFollows = 256   // peers an assembling agent follows at most
	maxFollowers      = 512   // follows an agent serves at once
	fullFor           = 120.0 // s a peer that refused a follower rests
)

// result is what a rollout measured.
type result struct {
	Last, Median  float64 // s: the last agent and the median one had every chunk
	TMin          float64 // s: LANs x S / origin rate
	Origin        float64 // bytes the origin sent, partial chunks included
	OriginReasons map[string]int
	Busy, Bans    int
	Events        int
	Wall          time.Duration
	Complete      bool // every agent ended with every chunk
}

type sim struct {
	p       params
	ev      events
	nw      network
	clock   simClock
	rng     *rand.Rand
	chunks  []manifest.Chunk
	key     manifest.ReleaseID
	origin  *host
	lans    []*lan
	byID    map[string]*agent
	sent    float64
	left    int // agents not done
	busy    int
	bans    int
	reasons map[string]int
	done    []float64
}

type lan struct{ agents []*agent } // in id order

// simClock is the schedulers' clock: virtual time from base.
type simClock struct {
	ev   *events
	base time.Time
}

var _ swarm.Clock = simClock{}

func (c simClock) Now() time.Time {
	return c.base.Add(time.Duration(c.ev.now * float64(time.Second)))
}

// NewTimer is not used: the simulator asks the schedulers again on its own
// events (agent.tick), it does not block in them.
func (c simClock) NewTimer(time.Duration) (<-chan time.Time, func() bool) {
	panic("fleetsim: a scheduler waited")
}

// chunkSizes draws content-defined chunk sizes for size bytes: 64 KiB plus
// an exponential part of mean 192 KiB, at most 1 MiB (avg about 256 KiB).
func chunkSizes(rng *rand.Rand, size int64) []manifest.Chunk {
	var out []manifest.Chunk
	for left := size; left > 0; {
		n := min(int64(64<<10+rng.ExpFloat64()*(192<<10)), 1<<20, left)
		var d manifest.Digest
		for i := range d {
			d[i] = byte(rng.Uint32())
		}
		out = append(out, manifest.Chunk{SHA256: d, Size: n})
		left -= n
	}
	return out
}

func newSim(p params) (*sim, error) {
	if p.N < 1 || p.LANs < 1 || p.N < p.LANs {
		return nil, fmt.Errorf("need at least one agent per LAN: %d agents, %d LANs", p.N, p.LANs)
	}
	s := &sim{p: p, rng: rand.New(rand.NewPCG(p.Seed, 0x5eed)), byID: make(map[string]*agent), reasons: make(map[string]int),
		key: manifest.ReleaseID{ChannelID: manifest.ChannelID{Product: "app", Channel: "stable"}, Sequence: 1}}
	s.nw.ev = &s.ev
	s.clock = simClock{ev: &s.ev, base: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s.chunks = chunkSizes(s.rng, p.Size)
	s.origin = &host{up: p.OriginRate, down: p.OriginRate}
	for l := range p.LANs {
		ln := &lan{}
		s.lans = append(s.lans, ln)
		for i := range p.N / p.LANs {
			a := newAgent(s, ln, fmt.Sprintf("l%02d-a%05d", l, i))
			ln.agents = append(ln.agents, a)
			s.byID[a.id] = a
		}
	}
	s.left = len(s.byID)
	for _, ln := range s.lans {
		for _, a := range ln.agents {
			a.fill()
		}
	}
	return s, nil
}

// run simulates the rollout until every agent is done, or until limit of
// virtual time.
func (s *sim) run(limit time.Duration) result {
	start := time.Now()
	for _, ln := range s.lans {
		for _, a := range ln.agents {
			a.known() // the states of before the release: peers follow the channel
			at := 0.0
			if s.p.StartSpread > 0 {
				at = s.rng.Float64() * s.p.StartSpread.Seconds()
			}
			s.ev.at(at, a.start)
		}
	}
	n := 0
	s.ev.run(func() bool { n++; return s.left == 0 || s.ev.now > limit.Seconds() })
	r := result{TMin: float64(s.p.LANs) * float64(s.p.Size) / s.p.OriginRate, Origin: s.sent,
		OriginReasons: s.reasons, Busy: s.busy, Bans: s.bans, Events: n, Wall: time.Since(start), Complete: s.left == 0}
	if len(s.done) > 0 {
		r.Last, r.Median = s.done[len(s.done)-1], s.done[len(s.done)/2]
	}
	return r
}

// errBusy is a peer's answer when it serves max_uploads requests already.
var errBusy = &fetch.StatusError{Code: http.StatusServiceUnavailable}

// agent is one simulated agent: the product's scheduler (swarm.Scheduler)
// with its workers, its host's link, and the state its peers see.
type agent struct {
	sim       *sim
	id        string
	lan       *lan
	host      *host
	view      *view
	sched     *swarm.Scheduler
	followers map[*agent]bool

	bits, fetching []byte // its own state, now
	idleOrigin     int
	idlePeer       int
	tasks          []*running
	uploads        int
	started, done  bool
	woken, ticking bool    // a poke, a tick is pending
	publishing     bool    // a state delivery is pending
	askAt          float64 // when its followers' next long-poll reaches it
}

// running is a task in flight.
type running struct {
	t    *swarm.Task
	f    *flow
	from *agent // nil: the origin
}

func newAgent(s *sim, ln *lan, id string) *agent {
	p := s.p
	a := &agent{sim: s, id: id, lan: ln, host: &host{up: p.PeerRate, down: p.PeerRate}, followers: make(map[*agent]bool),
		idleOrigin: p.OriginConns, idlePeer: p.PeerConns}
	a.view = &view{a: a, follows: make(map[*agent]*seen), resting: make(map[*agent]float64)}
	cfg := &swarm.Config{View: a.view, Self: id, Grace: p.Grace, PerPeer: p.PerPeer, Conns: p.PeerConns,
		MinRate: p.MinRate, Clock: s.clock}
	a.sched = swarm.NewScheduler(context.Background(), s.chunks, cfg, s.key)
	return a
}

// start opens the assembly: the release appears in its state, empty.
func (a *agent) start() {
	n := (len(a.sim.chunks) + 7) / 8
	a.bits, a.fetching = make([]byte, n), make([]byte, n)
	a.started = true
	a.changed()
	a.poke()
}

// known gives its followers its state of before the release: it follows
// the channel (nil bitmaps), as after the peers' first long-poll.
func (a *agent) known() {
	for f := range a.followers {
		if st := f.view.follows[a]; st != nil {
			st.known, st.progress = true, a.sim.clock.Now()
		}
	}
}

// changed publishes its state to its followers: their long-polls answer a
// latency after the change, and no sooner than minStateGap after their
// last ask.
func (a *agent) changed() {
	if a.publishing {
		return
	}
	a.publishing = true
	s := a.sim
	lat := s.p.Latency.Seconds()
	s.ev.at(max(s.ev.now, a.askAt)+lat, func() {
		a.publishing = false
		bits, fetching := clone(a.bits), clone(a.fetching)
		for f := range a.followers {
			f.view.deliver(a, bits, fetching)
		}
		a.askAt = max(s.ev.now+lat, a.askAt+minStateGap)
	})
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// wake asks the scheduler again soon: something it sees changed.
func (a *agent) wake() {
	if a.woken || !a.started || a.done {
		return
	}
	a.woken = true
	a.sim.ev.at(a.sim.ev.now, func() { a.woken = false; a.poke() })
}

// poke gives every idle worker the task the scheduler has for it now, as
// Assemble's workers do when they wake; with a worker still idle, it asks
// again after swarm.WaitTick.
func (a *agent) poke() {
	if a.done || !a.started {
		return
	}
	for a.idleOrigin > 0 {
		t := a.sched.Next(false)
		if t == nil {
			break
		}
		a.idleOrigin--
		a.run(t)
	}
	for a.idlePeer > 0 {
		t := a.sched.Next(true)
		if t == nil {
			break
		}
		a.idlePeer--
		a.run(t)
	}
	if (a.idleOrigin > 0 || a.idlePeer > 0) && !a.ticking {
		a.ticking = true
		a.sim.ev.at(a.sim.ev.now+swarm.WaitTick.Seconds(), func() { a.ticking = false; a.poke() })
	}
}

// run starts a task: a flow from the origin or the peer, a round trip more
// than its bytes.
func (a *agent) run(t *swarm.Task) {
	s := a.sim
	r := &running{t: t}
	a.tasks = append(a.tasks, r)
	size := float64(t.Chunk().Size)
	if h := t.Peer(); h != nil {
		p := s.byID[h.Addr]
		rtt := 2 * s.p.Latency.Seconds()
		if p.uploads >= s.p.MaxUploads {
			s.busy++
			s.ev.at(s.ev.now+rtt, func() { a.end(r, errBusy) })
			return
		}
		p.uploads++
		r.from = p
		r.f = s.nw.start(p.host, a.host, size, nil, func() {
			r.f = nil
			s.ev.at(s.ev.now+rtt, func() { a.end(r, nil) })
		})
		return
	}
	s.reasons[t.Reason()]++
	a.setFetching(t, true)
	rtt := 2 * s.p.OriginLatency.Seconds()
	r.f = s.nw.start(s.origin, a.host, size, &s.sent, func() {
		r.f = nil
		s.ev.at(s.ev.now+rtt, func() { a.end(r, nil) })
	})
}

func (a *agent) setFetching(t *swarm.Task, on bool) {
	i := t.Indexes()[0]
	if on {
		a.fetching[i/8] |= 1 << (i % 8)
	} else {
		a.fetching[i/8] &^= 1 << (i % 8)
	}
	a.changed()
}

// end records a task's end: the chunk is stored if it is the first to
// deliver it, and tasks the scheduler cancelled are stopped.
func (a *agent) end(r *running, err error) {
	if r.t == nil {
		return // ended already (cancelled)
	}
	t := r.t
	r.t = nil
	s := a.sim
	for i, x := range a.tasks {
		if x == r {
			a.tasks = append(a.tasks[:i], a.tasks[i+1:]...)
			break
		}
	}
	if r.from != nil {
		r.from.uploads--
	}
	if t.Peer() != nil {
		a.idlePeer++
	} else {
		a.idleOrigin++
		a.setFetching(t, false)
	}
	if a.sched.Finish(t, err) {
		for _, i := range t.Indexes() {
			a.bits[i/8] |= 1 << (i % 8)
		}
		a.changed()
		if a.sched.Remaining() == 0 && !a.done {
			a.done = true
			s.left--
			s.done = append(s.done, s.ev.now)
		}
	}
	for _, x := range append([]*running(nil), a.tasks...) {
		if x.t != nil && x.t.Cancelled() {
			if x.f != nil {
				s.nw.stop(x.f)
			}
			a.end(x, context.Canceled)
		}
	}
	a.wake()
}
