package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/agent/config"
	"github.com/fleetcast/fleetcast/agent/discovery"
	"github.com/fleetcast/fleetcast/agent/fleettls"
	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/agent/swarm"
	"github.com/fleetcast/fleetcast/internal/clocktest"
	"github.com/fleetcast/fleetcast/internal/testlog"
	"github.com/fleetcast/fleetcast/manifest"
)

// listSource lists the peers a test sets, as discovery would.
type listSource struct {
	mu    sync.Mutex
	peers []discovery.Peer
}

func (s *listSource) Peers() []discovery.Peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.peers)
}

func (s *listSource) set(peers []discovery.Peer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peers = peers
}

func (*listSource) Seen(addr, agentID, fleetID string) {}
func (*listSource) Changed() <-chan struct{}           { return nil }
func (*listSource) Browsed() <-chan struct{}           { return nil }

var appStable = manifest.ChannelID{Product: "app", Channel: "stable"}

// statePeer is a peer's state feed holding app/stable sequence 1 (one
// chunk). It answers a first request at once; a long-poll (after=V) it
// holds until answer is called or the request ends.
type statePeer struct {
	srv     *httptest.Server
	id      string
	full    atomic.Bool // answer long-polls 503, as a peer with all the followers it takes
	version atomic.Uint64
	asked   atomic.Int64 // state requests
	parked  atomic.Int64 // long-polls held, each until answer or notModified
	mu      sync.Mutex
	news    chan struct{} // closed by answer
	idle    chan struct{} // closed by notModified
}

func newStatePeer(t *testing.T) *statePeer { return newStatePeerID(t, "00000000000000fe") }

// newStatePeerID is a statePeer with agent id id.
func newStatePeerID(t *testing.T, id string) *statePeer {
	p := &statePeer{id: id, news: make(chan struct{}), idle: make(chan struct{})}
	p.version.Store(1)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.asked.Add(1)
		if r.URL.Query().Get("after") != "" && p.full.Load() {
			http.Error(w, "full", http.StatusServiceUnavailable)
			return
		}
		if r.URL.Query().Get("after") != "" {
			p.mu.Lock()
			news, idle := p.news, p.idle
			p.mu.Unlock()
			p.parked.Add(1)
			select {
			case <-news:
			case <-idle:
				if r.URL.Query().Get(peerproto.QuietParam) == "1" {
					w.WriteHeader(http.StatusNotModified)
					return
				}
			case <-r.Context().Done():
				return
			}
		}
		json.NewEncoder(w).Encode(peerproto.State{Proto: peerproto.Proto, AgentID: p.id, FleetID: fleettls.OpenID,
			Version: p.version.Load(), Releases: []peerproto.ReleaseHave{{ReleaseID: appStable.Release(1), Chunks: 1, Have: "AQ==", Fetching: "AA=="}},
			Subscriptions: []manifest.ChannelID{appStable}})
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// answer ends the held long-polls with a new state version.
func (p *statePeer) answer() {
	p.version.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.news)
	p.news = make(chan struct{})
}

// notModified ends the held long-polls as a wait that passed with nothing
// new: 304 to a quiet one.
func (p *statePeer) notModified() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.idle)
	p.idle = make(chan struct{})
}

func (p *statePeer) addr() string { return strings.TrimPrefix(p.srv.URL, "http://") }

// clockPeerManager runs a peer manager that follows peer, on clock clk,
// until the test ends.
func clockPeerManager(t *testing.T, clk *clocktest.Clock, change func(*config.Config), peer string) *peerManager {
	t.Helper()
	return clockPeerManagerOf(t, clk, change, []discovery.Peer{{Addr: peer, Source: discovery.SourceStatic}})
}

// clockPeerManagerOf runs a peer manager whose source lists peers.
func clockPeerManagerOf(t *testing.T, clk *clocktest.Clock, change func(*config.Config), peers []discovery.Peer) *peerManager {
	t.Helper()
	pm, ctx := newClockPeerManager(t, clk, change, &listSource{peers: peers})
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); pm.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return pm
}

// newClockPeerManager makes a peer manager on clk whose follows end with
// the test; the test calls sync itself, with the context returned.
func newClockPeerManager(t *testing.T, clk *clocktest.Clock, change func(*config.Config), src peerSource) (*peerManager, context.Context) {
	t.Helper()
	cfg := config.Default()
	cfg.Subscriptions = []manifest.ChannelID{appStable}
	if change != nil {
		change(&cfg)
	}
	pm := newPeerManager(peerOptions{cfg: &cfg, self: "00000000000000aa", fleet: fleettls.Open(),
		log: slog.New(slog.DiscardHandler), clock: clk}, src)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); pm.follows.Wait() })
	return pm, ctx
}

// waitFor polls cond until it holds or 20 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 20 s: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func holds(pm *peerManager) bool { return len(pm.Snapshot(appStable.Release(1))) == 1 }

// TestPeerManagerBanEnds: a banned peer is left out for ban_duration, on
// the manager's clock, then followed afresh and used again.
func TestPeerManagerBanEnds(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	peer := newStatePeer(t)
	pm := clockPeerManager(t, clk, func(c *config.Config) { c.BanDuration = time.Hour }, peer.addr())
	waitFor(t, "the peer's state is followed", func() bool { return holds(pm) })

	pm.Ban(peer.addr(), "test")
	if holds(pm) {
		t.Fatal("a banned peer is in the snapshot")
	}
	asked := peer.asked.Load()
	clk.Advance(time.Hour - time.Second) // run's syncs see the ban still on
	if holds(pm) || pm.Usable() != 0 {
		t.Fatalf("banned peer usable before ban_duration: snapshot %v, usable %d", pm.Snapshot(appStable.Release(1)), pm.Usable())
	}
	if st := pm.status(); len(st) != 1 || !st[0].Banned || st[0].BanReason != "test" {
		t.Fatalf("status during the ban: %+v", st)
	}
	clk.Advance(2 * time.Second) // past the ban; run's next sync follows the peer afresh
	waitFor(t, "the peer followed again once its ban ended", func() bool {
		if holds(pm) {
			return true
		}
		clk.Advance(time.Second) // run may have set its timer after the last advance
		return false
	})
	if peer.asked.Load() <= asked {
		t.Error("the peer's state was not asked for again after its ban")
	}
}

// heldFollow runs a peer manager on a fake clock that follows one peer,
// and returns once the follower's long-poll is held by the peer.
func heldFollow(t *testing.T) (*clocktest.Clock, *statePeer, *peerManager) {
	t.Helper()
	clk := clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	peer := newStatePeer(t)
	pm := clockPeerManager(t, clk, nil, peer.addr())
	waitFor(t, "the peer's state is followed", func() bool { return holds(pm) })
	// The follower waits minStateGap after an answer, and run for its next
	// sync: both on the clock.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := clk.BlockUntil(ctx, 2); err != nil {
		t.Fatalf("follower and run not both waiting on the clock: %v", err)
	}
	clk.Advance(minStateGap)
	waitFor(t, "the peer's long-poll is held", func() bool { return peer.parked.Load() >= 1 })
	return clk, peer, pm
}

// TestPeerManagerStaleState: a peer whose state is older than the
// follower's long-poll (IdlePoll) and its margin is not used, and is used again as soon as it
// answers.
func TestPeerManagerStaleState(t *testing.T) {
	clk, peer, pm := heldFollow(t)

	clk.Advance((peerproto.IdlePoll + 15) * time.Second)
	if holds(pm) {
		t.Fatal("a peer silent past the long-poll and its margin is still used")
	}
	peer.answer()
	waitFor(t, "the peer used again once it answered", func() bool { return holds(pm) })
}

// TestPeerManagerQuietPeerStaysUsable: a followed peer whose long-polls
// end 304 (nothing new) stays usable as long as it answers, with no state
// sent again.
func TestPeerManagerQuietPeerStaysUsable(t *testing.T) {
	clk, peer, pm := heldFollow(t)
	for round := range 3 {
		clk.Advance(peerproto.IdlePoll * time.Second)
		parked := peer.parked.Load()
		peer.notModified()
		waitFor(t, "the follower asks again after a 304", func() bool { return peer.parked.Load() > parked })
		if !holds(pm) {
			t.Fatalf("round %d: a peer that has just answered 304 is not used", round)
		}
	}
	if v := peer.version.Load(); v != 1 {
		t.Fatalf("peer state version %d", v)
	}
}

// TestPeerManagerUsableAfterSilence: with no peer answering, Usable counts
// one while some peer answered within peer_expiry, and none after.
func TestPeerManagerUsableAfterSilence(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	peer := newStatePeer(t)
	pm := clockPeerManager(t, clk, func(c *config.Config) { c.PeerExpiry = time.Minute; c.BanDuration = time.Hour }, peer.addr())
	waitFor(t, "the peer's state is followed", func() bool { return holds(pm) })
	pm.Ban(peer.addr(), "test")
	if n := pm.Usable(); n != 1 {
		t.Fatalf("Usable just after the only peer was banned = %d, want 1 (it answered within peer_expiry)", n)
	}
	clk.Advance(time.Minute)
	if n := pm.Usable(); n != 0 {
		t.Fatalf("Usable a peer_expiry after the last answer = %d, want 0", n)
	}
}

// TestRefusedHandshakeWarnings: a peer refused at the TLS handshake is
// warned of once per refusalWarnEvery on the manager's clock, with the
// count of refusals held back.
func TestRefusedHandshakeWarnings(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	logs := &testlog.Buffer{}
	cfg := config.Default()
	pm := newPeerManager(peerOptions{cfg: &cfg, self: "00000000000000aa", fleet: fleettls.Open(),
		log: slog.New(slog.NewTextHandler(logs, nil)), clock: clk}, &listSource{})
	refused := errors.Join(errors.New("remote error: tls: bad certificate"), fleettls.ErrNotFleet)
	warnings := func() int { return strings.Count(logs.String(), "peer refused at the TLS handshake") }
	for i := range 5 {
		pm.logStateError("198.18.0.9:7600", i+1, refused)
	}
	if n := warnings(); n != 1 {
		t.Fatalf("%d warnings for 5 refusals at one instant, want 1:\n%s", n, logs)
	}
	clk.Advance(refusalWarnEvery - time.Second)
	pm.logStateError("198.18.0.9:7600", 6, refused)
	if n := warnings(); n != 1 {
		t.Fatalf("%d warnings before refusalWarnEvery passed, want 1", n)
	}
	clk.Advance(time.Second)
	pm.logStateError("198.18.0.9:7600", 7, refused)
	if n := warnings(); n != 2 || !strings.Contains(logs.String(), "refusals_not_logged=5") {
		t.Fatalf("after refusalWarnEvery: %d warnings, want 2, the second counting the 5 held back:\n%s", n, logs)
	}
}

// lanOf starts n state peers, listed as mDNS finds them (ids known).
func lanOf(t *testing.T, n int) ([]*statePeer, []discovery.Peer) {
	var peers []*statePeer
	var listed []discovery.Peer
	for i := range n {
		p := newStatePeerID(t, fmt.Sprintf("%016x", 0x100+i))
		peers = append(peers, p)
		listed = append(listed, discovery.Peer{ID: p.id, Addr: p.addr(), FleetID: fleettls.OpenID, Proto: peerproto.Proto, Source: discovery.SourceMDNS})
	}
	return peers, listed
}

// followed lists the addresses the manager follows.
func followed(pm *peerManager) map[string]bool {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	out := make(map[string]bool)
	for addr, v := range pm.peers {
		if !v.self && !v.foreign {
			out[addr] = true
		}
	}
	return out
}

// TestPeerManagerFollowDegree: of 10 peers listed, an idle agent with
// peer_degree 4 follows 2, drawn at random; the 8 others still count as
// taking part (by id, not started, with nothing to fetch from them). While
// an assembly runs it follows all 10, and after it 2 again.
func TestPeerManagerFollowDegree(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	_, listed := lanOf(t, 10)
	pm := clockPeerManagerOf(t, clk, func(c *config.Config) { c.PeerDegree = 4 }, listed)
	key := appStable.Release(1)
	waitFor(t, "2 peers followed and their states in", func() bool {
		n := 0
		for _, h := range pm.Snapshot(key) {
			if len(h.Bits) > 0 {
				n++
			}
		}
		return n == 2
	})
	if f := followed(pm); len(f) != 2 {
		t.Fatalf("following %d peers, want peer_degree/2 = 2: %v", len(f), f)
	}
	hs := pm.Snapshot(key)
	ids := make(map[string]bool)
	for _, h := range hs {
		ids[h.ID] = true
		if len(h.Bits) == 0 && (h.Fetch != nil || h.Bits != nil || h.Fetching != nil) {
			t.Errorf("unfollowed %s: %+v; want no client and nil bitmaps (not started)", h.Addr, h)
		}
	}
	if len(hs) != 10 || len(ids) != 10 {
		t.Fatalf("snapshot lists %d agents (%d ids), want all 10 taking part: %+v", len(hs), len(ids), hs)
	}
	if n := pm.Usable(); n != 2 {
		t.Errorf("Usable = %d, want the 2 followed", n)
	}

	done := pm.Assembling()
	waitFor(t, "all 10 followed, with their states, during an assembly", func() bool {
		n := 0
		for _, h := range pm.Snapshot(key) {
			if len(h.Bits) > 0 {
				n++
			}
		}
		return n == 10 && len(followed(pm)) == 10
	})
	done()
	done() // once only
	waitFor(t, "back to 2 followed after the assembly", func() bool { return len(followed(pm)) == 2 })
	if hs := pm.Snapshot(key); len(hs) != 10 {
		t.Errorf("after the assembly the snapshot lists %d agents, want 10", len(hs))
	}
}

// TestPeerManagerRedraw: every redrawEvery, one followed peer gives way to
// one drawn from the others, so the follow set changes over time and stays
// at its degree.
func TestPeerManagerRedraw(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	_, listed := lanOf(t, 6)
	pm, ctx := newClockPeerManager(t, clk, func(c *config.Config) { c.PeerDegree = 4 }, &listSource{peers: listed})
	pm.sync(ctx)
	seen := followed(pm)
	if len(seen) != 2 {
		t.Fatalf("following %v, want 2 peers", seen)
	}
	waitFor(t, "the followed peers' states in", func() bool { return pm.Usable() == 2 })
	pm.sync(ctx)
	if f := followed(pm); !maps.Equal(f, seen) {
		t.Fatalf("the follow set changed before redrawEvery: %v, then %v", seen, f)
	}
	for round := range 8 {
		before := followed(pm)
		clk.Advance(redrawEvery)
		pm.sync(ctx)
		now := followed(pm)
		kept := 0
		for a := range now {
			kept += btoi(before[a])
			seen[a] = true
		}
		if len(now) != 2 || kept != 1 {
			t.Fatalf("round %d: following %v after %v; want one of them kept and one new", round, now, before)
		}
		waitFor(t, "the new peer's state in", func() bool { return pm.Usable() == 2 })
	}
	if len(seen) < 4 {
		t.Errorf("over 8 redraws the agent followed %d distinct peers of 6, want at least 4", len(seen))
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestPeerManagerFollowsAnotherWhenFull: a peer that answers its
// follower's long-poll 503 (as many followers as it takes) is left for
// another, and not drawn again for fullFor.
func TestPeerManagerFollowsAnotherWhenFull(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	peers, listed := lanOf(t, 2)
	peers[0].full.Store(true)
	src := &listSource{peers: listed[:1]}
	pm, ctx := newClockPeerManager(t, clk, func(c *config.Config) { c.PeerDegree = 2 }, src)
	pm.sync(ctx)
	src.set(listed) // the peer with room is listed once the full one is followed
	pm.sync(ctx)
	if f := followed(pm); len(f) != 1 || !f[peers[0].addr()] {
		t.Fatalf("following %v, want the full peer only", f)
	}
	// The full peer answers the first request, then 503 to the long-poll
	// that follows minStateGap later.
	wait, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := clk.BlockUntil(wait, 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(minStateGap)
	waitFor(t, "the full peer left", func() bool { return len(followed(pm)) == 0 })
	pm.sync(ctx)
	if f := followed(pm); len(f) != 1 || !f[peers[1].addr()] {
		t.Fatalf("following %v, want the peer with room", f)
	}
	pm.mu.Lock()
	until := pm.resting[peers[0].addr()]
	pm.mu.Unlock()
	if want := clk.Now().Add(fullFor); !until.Equal(want) {
		t.Errorf("full peer not drawn until %v, want %v", until, want)
	}
}

// browsedSource lists peers and has browsed once.
type browsedSource struct {
	listSource
	browsed chan struct{}
}

func (s *browsedSource) Browsed() <-chan struct{} { return s.browsed }

// silentPeer is the address of a peer that takes connections and never
// answers.
func silentPeer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	return ln.Addr().String()
}

// deadlineClock is a clock whose 4 s timer (settle's deadline) fires when
// the test sends on deadline; its other timers never fire, and each one
// made is announced on ticks.
type deadlineClock struct {
	swarm.SystemClock
	deadline chan time.Time
	ticks    chan struct{}
}

func (c *deadlineClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	if d == 4*time.Second {
		return c.deadline, func() bool { return true }
	}
	select {
	case c.ticks <- struct{}{}:
	default:
	}
	return nil, func() bool { return true }
}

// TestSettleEndsAtDeadline: an agent whose peers never answer (peers of
// another fleet, say) starts its first cycle 4 s after start. The deadline
// is a timer's channel, which delivers once: settle once received it while
// waiting for a tick, then looked for it again and waited for ever (CI,
// TestSwarmNetns phase 2).
func TestSettleEndsAtDeadline(t *testing.T) {
	clk := &deadlineClock{deadline: make(chan time.Time, 1), ticks: make(chan struct{}, 1)}
	src := &browsedSource{listSource: listSource{peers: []discovery.Peer{{Addr: silentPeer(t), Source: discovery.SourceMDNS}}},
		browsed: make(chan struct{})}
	close(src.browsed)
	cfg := config.Default()
	cfg.Subscriptions = []manifest.ChannelID{appStable}
	pm := newPeerManager(peerOptions{cfg: &cfg, self: "00000000000000aa", fleet: fleettls.Open(),
		log: slog.New(slog.DiscardHandler), clock: swarm.SystemClock{}}, src)
	pm.sync(t.Context()) // lists the peer, which never answers
	t.Cleanup(pm.follows.Wait)
	a := &Agent{cfg: &cfg, clock: clk}
	a.peerMgr.Store(pm)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); a.settle(ctx) }()
	<-clk.ticks // settle waits in its loop, where only the deadline can end it
	clk.deadline <- time.Now()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("settle still waiting 10 s after its deadline passed")
	}
	if ok, n := pm.settled(); ok || n != 1 {
		t.Errorf("settled() = %v, %d; want false, 1 (the peer never answered)", ok, n)
	}
}

// TestPeerManagerNextSync: an idle peer manager wakes for the next redraw,
// or sooner when a ban or a rest ends before it.
func TestPeerManagerNextSync(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	_, listed := lanOf(t, 4)
	pm, ctx := newClockPeerManager(t, clk, func(c *config.Config) { c.PeerDegree = 4; c.BanDuration = 5 * time.Second }, &listSource{peers: listed})
	pm.sync(ctx)
	near := func(got, want time.Duration) bool { return got >= want && got <= want+20*time.Millisecond }
	if d := pm.nextSync(); !near(d, redrawEvery) {
		t.Fatalf("idle: next sync in %s, want the redraw's %s", d, redrawEvery)
	}
	clk.Advance(10 * time.Second)
	for addr := range followed(pm) {
		pm.Ban(addr, "test")
		break
	}
	if d := pm.nextSync(); !near(d, 5*time.Second) {
		t.Fatalf("with a 5 s ban: next sync in %s, want 5s", d)
	}
	pm.mu.Lock()
	pm.resting["198.18.0.1:1"] = clk.Now().Add(2 * time.Second)
	pm.mu.Unlock()
	if d := pm.nextSync(); !near(d, 2*time.Second) {
		t.Fatalf("with a rest ending in 2 s: next sync in %s, want 2s", d)
	}
	select {
	case <-pm.resync:
	default:
		t.Error("a ban did not ask for a sync at once (another peer takes its place)")
	}
}
