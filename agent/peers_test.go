package agent

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/agent/config"
	"github.com/fleetcast/fleetcast/agent/discovery"
	"github.com/fleetcast/fleetcast/agent/fleettls"
	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/internal/clocktest"
	"github.com/fleetcast/fleetcast/internal/testlog"
	"github.com/fleetcast/fleetcast/manifest"
)

// staticSource lists fixed peers, as discovery would.
type staticSource struct{ peers []discovery.Peer }

func (s staticSource) Peers() []discovery.Peer          { return s.peers }
func (staticSource) Seen(addr, agentID, fleetID string) {}
func (staticSource) Changed() <-chan struct{}           { return nil }
func (staticSource) Browsed() <-chan struct{}           { return nil }

var appStable = manifest.ChannelID{Product: "app", Channel: "stable"}

// statePeer is a peer's state feed holding app/stable sequence 1 (one
// chunk). It answers a first request at once; a long-poll (after=V) it
// holds until answer is called or the request ends.
type statePeer struct {
	srv     *httptest.Server
	version atomic.Uint64
	asked   atomic.Int64 // state requests
	mu      sync.Mutex
	news    chan struct{} // closed by answer
}

func newStatePeer(t *testing.T) *statePeer {
	p := &statePeer{news: make(chan struct{})}
	p.version.Store(1)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.asked.Add(1)
		if r.URL.Query().Get("after") != "" {
			p.mu.Lock()
			news := p.news
			p.mu.Unlock()
			select {
			case <-news:
			case <-r.Context().Done():
				return
			}
		}
		json.NewEncoder(w).Encode(peerproto.State{Proto: peerproto.Proto, AgentID: "00000000000000fe", FleetID: fleettls.OpenID,
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

func (p *statePeer) addr() string { return strings.TrimPrefix(p.srv.URL, "http://") }

// clockPeerManager runs a peer manager that follows peer, on clock clk,
// until the test ends.
func clockPeerManager(t *testing.T, clk *clocktest.Clock, change func(*config.Config), peer string) *peerManager {
	t.Helper()
	cfg := config.Default()
	cfg.Subscriptions = []manifest.ChannelID{appStable}
	if change != nil {
		change(&cfg)
	}
	pm := newPeerManager(peerOptions{cfg: &cfg, self: "00000000000000aa", fleet: fleettls.Open(),
		log: slog.New(slog.DiscardHandler), clock: clk}, staticSource{[]discovery.Peer{{Addr: peer, Source: discovery.SourceStatic}}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); pm.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return pm
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
	waitFor(t, "the peer followed again once its ban ended", func() bool { return holds(pm) })
	if peer.asked.Load() <= asked {
		t.Error("the peer's state was not asked for again after its ban")
	}
}

// TestPeerManagerStaleState: a peer whose state is older than the
// long-poll and its margin is not used, and is used again as soon as it
// answers.
func TestPeerManagerStaleState(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	peer := newStatePeer(t)
	pm := clockPeerManager(t, clk, nil, peer.addr())
	waitFor(t, "the peer's state is followed", func() bool { return holds(pm) })
	// The follower waits minStateGap after an answer, and run a second for
	// its next sync: both on the clock.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := clk.BlockUntil(ctx, 2); err != nil {
		t.Fatalf("follower and run not both waiting on the clock: %v", err)
	}
	clk.Advance(minStateGap)
	waitFor(t, "the peer's long-poll is held", func() bool { return peer.asked.Load() >= 2 })

	clk.Advance((peerproto.LongPoll + 15) * time.Second)
	if holds(pm) {
		t.Fatal("a peer silent past the long-poll and its margin is still used")
	}
	peer.answer()
	waitFor(t, "the peer used again once it answered", func() bool { return holds(pm) })
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
		log: slog.New(slog.NewTextHandler(logs, nil)), clock: clk}, staticSource{})
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
