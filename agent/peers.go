package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/fleetcast/fleetcast/agent/config"
	"github.com/fleetcast/fleetcast/agent/discovery"
	"github.com/fleetcast/fleetcast/agent/fetch"
	"github.com/fleetcast/fleetcast/agent/fleettls"
	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/agent/swarm"
	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/signing"
)

// peerSource lists the peers to follow; discovery.Discovery is one. Its
// methods are safe for concurrent use.
type peerSource interface {
	Peers() []discovery.Peer
	Seen(addr, agentID, fleetID string)
	Changed() <-chan struct{}
	Browsed() <-chan struct{}
}

var _ peerSource = (*discovery.Discovery)(nil)

// peerView is what this agent knows of one peer, from its state feed.
type peerView struct {
	addr   string
	source discovery.Source
	fetch  *fetch.Client // chunk and manifest requests

	// guarded by peerManager.mu
	id, fleet   string
	rels        map[manifest.ReleaseID]*peerRelease
	subs        map[manifest.ChannelID]bool // the channels it follows
	lastState   time.Time                   // last state response
	since       time.Time                   // followed since
	bannedUntil time.Time
	banReason   string
	foreign     bool   // another fleet or protocol: ignored
	self        bool   // this agent, reached through another address
	fails       int    // state requests failed in a row
	lastErr     string // why the last state request failed; "" once one is answered
}

// peerRelease is one release a peer holds: its bitmap, and when it last
// grew (a peer that fetches makes progress).
type peerRelease struct {
	bits     []byte
	fetching []byte
	count    int
	maxCount int // the most chunks it ever reported: progress is only past it
	progress time.Time
}

// peerManager follows every peer's state feed, keeps their views, and bans
// peers that send bad data. Schedulers read its views through snapshot.
type peerManager struct {
	peerOptions
	src     peerSource
	client  *http.Client
	limit   *rate.Limiter // download_rate, or nil
	refused *warnLimiter  // warnings of peers refused at the TLS handshake

	subscribed map[manifest.ChannelID]bool // the channels whose releases are kept of peers' states
	lastHeard  atomic.Int64                // unix nanoseconds of the last answer of any peer of the fleet

	follows sync.WaitGroup // one goroutine per peer followed; run waits for them

	mu         sync.Mutex
	listed     []discovery.Peer     // the source's list at the last sync
	peers      map[string]*peerView // followed, and banned ones until their ban ends
	cancels    map[string]context.CancelFunc
	bannedIDs  map[string]time.Time            // agent id → until: a banned agent stays banned at another address
	changed    chan struct{}                   // closed and replaced at every change
	resting    map[string]time.Time            // peers not drawn until then: refused to be followed (full), or just left by a redraw
	resync     chan struct{}                   // run syncs at once: a followed peer was banned, left, or is not of this fleet; an assembly began or ended
	assembling int                             // assemblies running: while any runs, every listed peer is followed (up to maxRolloutFollows)
	runCtx     atomic.Pointer[context.Context] // run's, for the follows Assembling starts
	redrawn    time.Time                       // the last redraw
	rng        *rand.Rand
	subsOf     map[string]map[manifest.ChannelID]bool // agent id → the channels it followed when last seen; of listed peers only
}

// peerOptions is what a peer manager needs of its agent.
type peerOptions struct {
	cfg      *config.Config
	self     string          // this agent's id
	fleet    *fleettls.Fleet // this agent's
	log      *slog.Logger
	rejected func()      // a peer sent a chunk that failed its check; may be nil
	clock    swarm.Clock // nil: the system's
}

func newPeerManager(o peerOptions, src peerSource) *peerManager {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = o.cfg.PerPeer + 2
	// A rollout's chunk connections close soon after it; a follow's
	// connection is never idle long (its next long-poll follows the last).
	tr.IdleConnTimeout = 15 * time.Second
	if o.rejected == nil {
		o.rejected = func() {}
	}
	if o.clock == nil {
		o.clock = swarm.SystemClock{}
	}
	pm := &peerManager{peerOptions: o, src: src,
		client:     &http.Client{Transport: o.fleet.Transport(tr)},
		peers:      make(map[string]*peerView),
		cancels:    make(map[string]context.CancelFunc),
		bannedIDs:  make(map[string]time.Time),
		resting:    make(map[string]time.Time),
		resync:     make(chan struct{}, 1),
		subsOf:     make(map[string]map[manifest.ChannelID]bool),
		rng:        rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		changed:    make(chan struct{}),
		subscribed: make(map[manifest.ChannelID]bool),
		refused:    newWarnLimiter(refusalWarnEvery),
	}
	for _, s := range o.cfg.Subscriptions {
		pm.subscribed[s] = true
	}
	if o.cfg.DownloadRate > 0 {
		pm.limit = fetch.Limiter(o.cfg.DownloadRate)
	}
	return pm
}

// run follows the peers the source lists until ctx is done: at once when
// the source's list changes, and when a ban or a rest ends or a redraw is
// due (one timer for all of them: an idle agent wakes about once a minute).
func (pm *peerManager) run(ctx context.Context) {
	defer pm.follows.Wait() // each follow ends with ctx
	pm.runCtx.Store(&ctx)
	for {
		pm.sync(ctx)
		tick, stop := pm.clock.NewTimer(pm.nextSync())
		select {
		case <-ctx.Done():
		case <-pm.src.Changed():
		case <-pm.resync:
		case <-tick:
		}
		stop()
		if ctx.Err() != nil {
			return
		}
	}
}

// nextSync is how long until sync has something to do that no change of
// the source's list signals: a ban or a rest ends, or a redraw is due.
func (pm *peerManager) nextSync() time.Duration {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	now := pm.clock.Now()
	next := pm.redrawn.Add(redrawEvery)
	sooner := func(t time.Time) {
		if t.After(now) && t.Before(next) {
			next = t
		}
	}
	for _, v := range pm.peers {
		sooner(v.bannedUntil)
	}
	for _, until := range pm.bannedIDs {
		sooner(until)
	}
	for _, until := range pm.resting {
		sooner(until)
	}
	// Just past the moment: sync's checks are "after".
	return max(next.Sub(now)+time.Millisecond, 10*time.Millisecond)
}

// sync follows the peers the source lists: every static one, and others
// drawn at random up to the follow degree (half of peer_degree); it stops
// following those gone, and every redrawEvery replaces the least useful
// one (see redrawLocked), so that over time each agent meets others.
func (pm *peerManager) sync(ctx context.Context) {
	listed := pm.src.Peers()
	pm.mu.Lock()
	defer pm.mu.Unlock()
	now := pm.clock.Now()
	pm.listed = listed
	seen := make(map[string]bool, len(listed))
	for _, p := range listed {
		seen[p.Addr] = true
		if v := pm.peers[p.Addr]; v != nil && !v.bannedUntil.IsZero() && !now.Before(v.bannedUntil) {
			pm.dropLocked(p.Addr) // the ban is over: it may be followed afresh
		}
	}
	for id, until := range pm.bannedIDs {
		if now.After(until) {
			delete(pm.bannedIDs, id)
		}
	}
	ids := make(map[string]bool, len(listed))
	for _, p := range listed {
		ids[p.ID] = true
	}
	for id := range pm.subsOf {
		if !ids[id] {
			delete(pm.subsOf, id)
		}
	}
	for addr, until := range pm.resting {
		if now.After(until) {
			delete(pm.resting, addr)
		}
	}
	for addr, v := range pm.peers {
		if !seen[addr] && now.After(v.bannedUntil) {
			pm.dropLocked(addr)
		}
	}
	if pm.assembling == 0 {
		pm.trimLocked(now)
		pm.redrawLocked(now)
	}
	pm.fillLocked(ctx, now)
}

// followDegree is how many peers an idle agent follows: half of
// peer_degree, the other half being for the peers that follow it.
func followDegree(cfg *config.Config) int { return (cfg.PeerDegree + 1) / 2 }

// maxRolloutFollows bounds the peers followed while a release is being
// assembled.
const maxRolloutFollows = 256

// followLimitLocked is how many peers to follow now: every listed one
// (up to maxRolloutFollows) while an assembly runs, so that the agents
// share the origin's chunks knowing each other's progress; followDegree
// when idle.
func (pm *peerManager) followLimitLocked() int {
	if pm.assembling > 0 {
		return max(maxRolloutFollows, followDegree(pm.cfg))
	}
	return followDegree(pm.cfg)
}

// Assembling tells the peer manager that an assembly begins: it follows
// every listed peer (from now, when run runs) until the returned func is
// called (once), when it goes back to its bounded set.
func (pm *peerManager) Assembling() (done func()) {
	pm.mu.Lock()
	pm.assembling++
	pm.mu.Unlock()
	if ctx := pm.runCtx.Load(); ctx != nil {
		pm.sync(*ctx) // the new follows start now: the caller may wait for their states
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			pm.mu.Lock()
			pm.assembling--
			pm.mu.Unlock()
			pm.resyncSoon()
		})
	}
}

// trimLocked stops following peers drawn past the follow degree (after an
// assembly), at random; static peers are kept.
func (pm *peerManager) trimLocked(now time.Time) {
	extra := pm.followingLocked(now) - followDegree(pm.cfg)
	if extra <= 0 {
		return
	}
	var drawn []string
	for addr, v := range pm.peers {
		if !v.self && !v.foreign && v.source != discovery.SourceStatic && !now.Before(v.bannedUntil) {
			drawn = append(drawn, addr)
		}
	}
	slices.Sort(drawn) // map order is not the randomness wanted
	pm.rng.Shuffle(len(drawn), func(i, j int) { drawn[i], drawn[j] = drawn[j], drawn[i] })
	for _, addr := range drawn[:min(extra, len(drawn))] {
		pm.dropLocked(addr)
	}
}

// followingLocked counts the peers followed that count toward the follow
// degree: of this fleet (or not known yet), not this agent, not banned.
func (pm *peerManager) followingLocked(now time.Time) int {
	n := 0
	for _, v := range pm.peers {
		if !v.self && !v.foreign && !now.Before(v.bannedUntil) {
			n++
		}
	}
	return n
}

// fillLocked follows every static peer listed, and others drawn at random
// from the rest until the follow degree is reached. Resting peers (that
// refused to be followed, or that a redraw just left) are drawn only when
// no other is left.
func (pm *peerManager) fillLocked(ctx context.Context, now time.Time) {
	var others, resting []discovery.Peer
	for _, p := range pm.listed {
		switch {
		case pm.peers[p.Addr] != nil:
		case p.Source == discovery.SourceStatic:
			pm.startLocked(ctx, p)
		case pm.resting[p.Addr].IsZero():
			others = append(others, p)
		default:
			resting = append(resting, p)
		}
	}
	shuffle := func(ps []discovery.Peer) { pm.rng.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] }) }
	shuffle(others)
	shuffle(resting)
	others = append(others, resting...)
	for n := pm.followingLocked(now); n < pm.followLimitLocked() && len(others) > 0; n++ {
		pm.startLocked(ctx, others[0])
		others = others[1:]
	}
}

// startLocked starts following p.
func (pm *peerManager) startLocked(ctx context.Context, p discovery.Peer) {
	v := &peerView{addr: p.Addr, source: p.Source, rels: make(map[manifest.ReleaseID]*peerRelease),
		fetch: pm.fetcher(p.Addr), since: pm.clock.Now()}
	pctx, cancel := context.WithCancel(ctx)
	pm.peers[p.Addr], pm.cancels[p.Addr] = v, cancel
	pm.follows.Go(func() { pm.follow(pctx, v) })
	pm.bumpLocked()
}

// dropLocked stops following addr and forgets its view.
func (pm *peerManager) dropLocked(addr string) {
	if cancel := pm.cancels[addr]; cancel != nil {
		cancel()
	}
	delete(pm.peers, addr)
	delete(pm.cancels, addr)
	pm.bumpLocked()
}

// redrawEvery is how often the peer manager replaces one followed peer
// when more are listed than it follows.
const redrawEvery = time.Minute

// redrawLocked stops following the least useful followed peer, once every
// redrawEvery, when the follow degree is reached and others wait to be
// drawn; fillLocked then draws one of them. Least useful: one that is
// failing, then the one holding the fewest chunks of the releases this
// agent follows (a peer ahead in a rollout is kept), ties broken at random.
// Static peers are never replaced.
func (pm *peerManager) redrawLocked(now time.Time) {
	if now.Sub(pm.redrawn) < redrawEvery {
		return
	}
	pm.redrawn = now
	if pm.followingLocked(now) < followDegree(pm.cfg) || len(pm.listed) <= len(pm.peers) {
		return
	}
	var worst *peerView
	worstScore := 0
	for _, v := range pm.peers {
		if v.self || v.foreign || v.source == discovery.SourceStatic || now.Before(v.bannedUntil) || now.Sub(v.since) < redrawEvery {
			continue
		}
		score := -1 // failing, or not heard from yet
		if v.fails == 0 && !v.lastState.IsZero() {
			score = 0
			for _, r := range v.rels {
				score += r.count
			}
		}
		if worst == nil || score < worstScore || (score == worstScore && pm.rng.IntN(2) == 0) {
			worst, worstScore = v, score
		}
	}
	if worst != nil {
		pm.log.Debug("peer no longer followed, to meet another", slog.String("peer", worst.addr))
		pm.dropLocked(worst.addr)
		pm.resting[worst.addr] = now.Add(redrawEvery) // meet another, not the same one again
	}
}

// fullFor is how long a peer that refused to be followed is not drawn.
const fullFor = 2 * time.Minute

// refusedFollow records that a peer answered a state request with 503:
// it has as many followers as it takes. It is dropped, and not drawn
// again for fullFor, unless it is static or no other peer is listed.
func (pm *peerManager) refusedFollow(v *peerView) bool {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if v.source == discovery.SourceStatic || len(pm.listed) <= len(pm.peers) {
		return false
	}
	pm.resting[v.addr] = pm.clock.Now().Add(fullFor)
	pm.log.Debug("peer has all the followers it takes; following another", slog.String("peer", v.addr))
	if pm.peers[v.addr] == v {
		pm.dropLocked(v.addr)
	}
	pm.resyncSoon()
	return true
}

// fetcher makes the client for a peer's chunks and manifests: one attempt,
// peer_timeout, the minimum throughput, and download_rate.
func (pm *peerManager) fetcher(addr string) *fetch.Client {
	cfg := pm.cfg
	base := &url.URL{Scheme: pm.fleet.Scheme(), Host: addr, Path: "/v1/peer/"}
	p := fetch.Policy{Timeout: cfg.PeerTimeout, TimeoutKey: "peer_timeout", MinRate: cfg.MinThroughput, Window: cfg.ThroughputWindow}
	return fetch.New(base, p, fetch.Options{HTTP: pm.client, What: "peer", Limit: pm.limit,
		ChunkPath: func(d manifest.Digest) string {
			return strings.TrimPrefix(peerproto.ChunkPath, "/v1/peer/") + d.String()
		},
		Rejected: pm.rejected}, pm.log)
}

// follow long-polls a peer's state until ctx is done.
func (pm *peerManager) follow(ctx context.Context, v *peerView) {
	var after uint64
	fails := 0
	for ctx.Err() == nil {
		asked := pm.clock.Now()
		st, maps, err := pm.fetchState(ctx, v.addr, after)
		wait := time.Duration(0)
		var status *fetch.StatusError
		switch {
		case errors.As(err, &status) && status.Code == http.StatusServiceUnavailable && pm.refusedFollow(v):
			return
		case errors.Is(err, errNotModified):
			fails = 0
			pm.heard(v) // the view stands; ask again at once
			if pm.clock.Now().Sub(asked) < (peerproto.LongPoll-1)*time.Second {
				wait = time.Second // answered at once: not a long-poll
			}
		case err != nil:
			after = 0 // it may have restarted
			fails++
			pm.mark(v, func() { v.fails, v.lastErr = fails, err.Error() })
			// A peer that starts with this one is tried again soon; one
			// that stays away, less and less often.
			wait = 100 * time.Millisecond
			if fails > settleTries {
				wait = fetch.Backoff(200*time.Millisecond, 30*time.Second, fails-settleTries)
			}
			pm.logStateError(v.addr, fails, err)
		case st.AgentID == pm.self:
			pm.mark(v, func() { v.self = true })
			pm.resyncSoon()
			return
		case st.FleetID != pm.fleet.ID():
			pm.src.Seen(v.addr, st.AgentID, st.FleetID)
			pm.mark(v, func() { v.foreign, v.id, v.fleet = true, st.AgentID, st.FleetID })
			pm.resyncSoon()
			wait = time.Minute
		default:
			fails = 0
			pm.src.Seen(v.addr, st.AgentID, st.FleetID)
			switch {
			case after > 0 && st.Version <= after && pm.clock.Now().Sub(asked) < (peerproto.LongPoll-1)*time.Second:
				wait = time.Second // answered at once with nothing new: not a long-poll
			case pm.clock.Now().Sub(asked) < minStateGap:
				wait = minStateGap - pm.clock.Now().Sub(asked) // at most a few states a second, whatever it claims
			}
			if st.Version != after {
				pm.update(v, st, maps)
			} else {
				pm.heard(v)
			}
			after = st.Version
		}
		if wait > 0 {
			t, stop := pm.clock.NewTimer(wait)
			select {
			case <-ctx.Done():
			case <-t:
			}
			stop()
		}
	}
}

// errNotModified is a quiet long-poll's answer: the peer's state is still
// the version asked after.
var errNotModified = errors.New("peer state not modified")

// fetchState GETs a peer's state, waiting up to IdlePoll seconds for news
// after version after; errNotModified when there is none (a peer that does
// not know quiet=1 sends its state again, after LongPoll seconds).
func (pm *peerManager) fetchState(ctx context.Context, addr string, after uint64) (*peerproto.State, []peerproto.Bits, error) {
	ctx, cancel := context.WithTimeout(ctx, (peerproto.IdlePoll+10)*time.Second)
	defer cancel()
	u := url.URL{Scheme: pm.fleet.Scheme(), Host: addr, Path: peerproto.StatePath}
	if after > 0 {
		q := url.Values{"after": {strconv.FormatUint(after, 10)},
			peerproto.WaitParam: {strconv.Itoa(peerproto.IdlePoll)}, peerproto.QuietParam: {"1"}}
		u.RawQuery = q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := pm.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && after > 0:
		return nil, nil, errNotModified
	case resp.StatusCode != http.StatusOK:
		return nil, nil, &fetch.StatusError{Code: resp.StatusCode}
	}
	b, err := fetch.ReadBody(resp, peerproto.MaxState)
	if err != nil {
		return nil, nil, err
	}
	return peerproto.ParseState(b)
}

// heard records that a followed peer answered that its state is
// unchanged.
func (pm *peerManager) heard(v *peerView) {
	now := pm.clock.Now()
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if v.lastState.IsZero() {
		return // never had a state: nothing to keep fresh
	}
	v.fails, v.lastErr = 0, ""
	v.lastState = now
	pm.lastHeard.Store(now.UnixNano())
}

// update replaces a peer's view with a new state.
func (pm *peerManager) update(v *peerView, st *peerproto.State, maps []peerproto.Bits) {
	now := pm.clock.Now()
	pm.mu.Lock()
	defer pm.mu.Unlock()
	v.fails, v.lastErr = 0, ""
	v.id, v.fleet, v.lastState, v.foreign = st.AgentID, st.FleetID, now, false
	pm.lastHeard.Store(now.UnixNano())
	rels := make(map[manifest.ReleaseID]*peerRelease, len(st.Releases))
	for i, r := range st.Releases {
		key := r.ReleaseID
		if !pm.subscribed[key.ChannelID] {
			continue // not this agent's business: not kept
		}
		pr := &peerRelease{bits: maps[i].Have, fetching: maps[i].Fetching, count: peerproto.BitCount(maps[i].Have), progress: now}
		pr.maxCount = pr.count
		if old := v.rels[key]; old != nil {
			// Progress is a new high of chunks held, or a new origin fetch
			// started: a peer cannot look alive by flapping one bit.
			pr.maxCount = max(old.maxCount, pr.count)
			if pr.count <= old.maxCount && !peerproto.NewBits(old.fetching, pr.fetching) {
				pr.progress = old.progress
			}
		}
		rels[key] = pr
	}
	v.rels = rels
	v.subs = make(map[manifest.ChannelID]bool, len(st.Subscriptions))
	for _, sub := range st.Subscriptions {
		v.subs[sub] = true
	}
	pm.subsOf[st.AgentID] = v.subs
	pm.bumpLocked()
}

// logStateError logs a failed state request: a peer refused at the TLS
// handshake as a warning, at most one every refusalWarnEvery; any other
// failure at DEBUG, the first of a run.
func (pm *peerManager) logStateError(addr string, fails int, err error) {
	if !errors.Is(err, fleettls.ErrNotFleet) {
		if fails == 1 {
			pm.log.Debug("peer state unavailable", slog.String("peer", addr), slog.String("reason", err.Error()))
		}
		return
	}
	if ok, held := pm.refused.allow(addr, pm.clock.Now()); ok {
		pm.log.Warn("peer refused at the TLS handshake", slog.String("peer", addr), slog.String("reason", err.Error()),
			slog.Int("refusals_not_logged", held))
	}
}

func (pm *peerManager) mark(v *peerView, f func()) {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	f()
	pm.bumpLocked()
}

// resyncSoon asks run to sync at once: a follow slot is free.
func (pm *peerManager) resyncSoon() {
	select {
	case pm.resync <- struct{}{}:
	default:
	}
}

func (pm *peerManager) bumpLocked() {
	close(pm.changed)
	pm.changed = make(chan struct{})
}

// Wake returns a channel closed at the next change of any view.
func (pm *peerManager) Wake() <-chan struct{} {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	return pm.changed
}

// Ban ignores a peer for ban_duration.
func (pm *peerManager) Ban(addr, reason string) {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	v := pm.peers[addr]
	if v == nil {
		return
	}
	v.bannedUntil, v.banReason = pm.clock.Now().Add(pm.cfg.BanDuration), reason
	if v.id != "" {
		pm.bannedIDs[v.id] = v.bannedUntil
	}
	if cancel := pm.cancels[addr]; cancel != nil {
		cancel() // stop following it; the view stays, as a tombstone, until the ban ends
		pm.cancels[addr] = func() {}
	}
	v.rels = nil
	pm.log.Warn("peer banned", slog.String("peer", addr), slog.String("agent", v.id),
		slog.Duration("for", pm.cfg.BanDuration), slog.String("reason", reason))
	pm.bumpLocked()
	pm.resyncSoon() // another takes its place
}

// usableLocked: a peer of this fleet, not banned, with a recent state.
func (pm *peerManager) usableLocked(v *peerView, now time.Time) bool {
	return !v.self && !v.foreign && v.id != "" && now.After(v.bannedUntil) && now.After(pm.bannedIDs[v.id]) &&
		now.Sub(v.lastState) < (peerproto.IdlePoll+15)*time.Second
}

// minStateGap is the least time between two state requests to one peer.
const minStateGap = 20 * time.Millisecond

// settleTries is how many quick tries a peer gets before settled gives up
// on it.
const settleTries = 3

// settled reports whether every peer listed has answered, or failed
// settleTries times, and how many peers are listed.
func (pm *peerManager) settled() (bool, int) {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	for _, v := range pm.peers {
		if v.lastState.IsZero() && v.fails < settleTries && !v.self {
			return false, len(pm.peers)
		}
	}
	return true, len(pm.peers)
}

// Usable counts the peers that may be asked for chunks now, or soon: those
// of this fleet, not banned, including those not reached yet; and 1 if
// there are none but some peer answered within peer_expiry (it may be back).
func (pm *peerManager) Usable() int {
	now := pm.clock.Now()
	pm.mu.Lock()
	defer pm.mu.Unlock()
	n := 0
	for _, v := range pm.peers {
		if !v.self && !v.foreign && now.After(v.bannedUntil) && v.fails < settleTries {
			n++
		}
	}
	if last := pm.lastHeard.Load(); n == 0 && last != 0 && now.Sub(time.Unix(0, last)) < pm.cfg.PeerExpiry {
		n = 1
	}
	return n
}

// swarm is the scheduler's configuration for assemblies with these peers.
func (pm *peerManager) swarm() *swarm.Config {
	c := pm.cfg
	return &swarm.Config{View: pm, Self: pm.self, Grace: c.OriginGrace, PerPeer: c.PerPeer, Conns: c.PeerConnections,
		MinRate: c.MinThroughput, Clock: pm.clock}
}

// Snapshot returns the usable peers that take part in a release: those
// whose state lists it, whatever they hold of it, and those that follow its
// channel and will start on it soon.
func (pm *peerManager) Snapshot(key manifest.ReleaseID) []swarm.Holder {
	now := pm.clock.Now()
	pm.mu.Lock()
	defer pm.mu.Unlock()
	var out []swarm.Holder
	for _, v := range pm.peers {
		if !pm.usableLocked(v, now) {
			continue
		}
		if r := v.rels[key]; r != nil {
			out = append(out, swarm.Holder{Addr: v.addr, ID: v.id, Bits: r.bits, Fetching: r.fetching, Progress: r.progress, Fetch: v.fetch})
		} else if v.subs[key.ChannelID] {
			// It follows the channel, so it will take part: it holds
			// nothing yet (nil bitmaps) and has made no progress.
			out = append(out, swarm.Holder{Addr: v.addr, ID: v.id, Fetch: v.fetch})
		}
	}
	out = append(out, pm.unfollowedLocked(key.ChannelID)...)
	slices.SortFunc(out, func(a, b swarm.Holder) int { return strings.Compare(a.Addr, b.Addr) })
	return out
}

// unfollowedLocked lists the agents discovery knows (by id) that take part
// in channel ch, as far as this agent knows (those whose subscriptions it
// saw, and those it never followed), and of which it has no usable state:
// not followed (the bounded set when idle, past maxRolloutFollows during
// an assembly), or followed but not heard from yet (an assembly has just
// made this agent follow every peer). They count when the agents share
// the origin's chunks among themselves (each chunk goes to the agent of
// highest rendezvous weight among all that take part) as agents that have
// not started on the release: nil bitmaps, so a chunk of theirs is left to
// them for origin_grace from the start of the assembly, by which time
// their states are in.
func (pm *peerManager) unfollowedLocked(ch manifest.ChannelID) []swarm.Holder {
	var out []swarm.Holder
	now := pm.clock.Now()
	known := make(map[string]bool, len(pm.peers))
	for _, v := range pm.peers {
		if v.id != "" && (pm.usableLocked(v, now) || v.self || v.foreign) {
			known[v.id] = true
		}
	}
	for _, p := range pm.listed {
		if p.ID == "" || p.ID == pm.self || known[p.ID] || now.Before(pm.bannedIDs[p.ID]) {
			continue
		}
		if v := pm.peers[p.Addr]; v != nil && (!now.After(v.bannedUntil) || v.fails >= settleTries) {
			continue // banned, or failing
		}
		if subs, ok := pm.subsOf[p.ID]; ok && !subs[ch] {
			continue
		}
		out = append(out, swarm.Holder{Addr: p.Addr, ID: p.ID})
	}
	return out
}

// newest returns the peers that hold a release of the product channel newer
// than seq, best first (highest sequence, then most chunks).
func (pm *peerManager) newest(id manifest.ChannelID, seq uint64) []peerOffer {
	now := pm.clock.Now()
	pm.mu.Lock()
	defer pm.mu.Unlock()
	var out []peerOffer
	for _, v := range pm.peers {
		if !pm.usableLocked(v, now) {
			continue
		}
		for k, r := range v.rels {
			if k.ChannelID == id && k.Sequence > seq {
				out = append(out, peerOffer{addr: v.addr, seq: k.Sequence, count: r.count, fetch: v.fetch})
			}
		}
	}
	slices.SortFunc(out, func(a, b peerOffer) int { return cmp.Or(cmp.Compare(b.seq, a.seq), cmp.Compare(b.count, a.count)) })
	return out
}

// peerOffer is a peer that holds a newer release.
type peerOffer struct {
	addr  string
	seq   uint64
	count int
	fetch *fetch.Client
}

// fetchPeerManifest gets a release's signed envelope from a peer.
func fetchPeerManifest(ctx context.Context, o *fetch.Client, key manifest.ReleaseID) ([]byte, error) {
	rel := "manifest/" + key.Product + "/" + key.Channel + "/" + strconv.FormatUint(key.Sequence, 10)
	out, err := o.File(ctx, rel, signing.MaxEnvelopeSize)
	if err != nil {
		return nil, fmt.Errorf("peer %s: %w", o.Host(), err)
	}
	return out, nil
}

// status lists the peers followed, for the status API.
func (pm *peerManager) status() []peerproto.PeerStatus {
	now := pm.clock.Now()
	pm.mu.Lock()
	defer pm.mu.Unlock()
	out := []peerproto.PeerStatus{}
	for _, v := range pm.peers {
		if v.self {
			continue
		}
		s := peerproto.PeerStatus{Addr: v.addr, ID: v.id, Source: string(v.source), Fleet: v.fleet, LastState: v.lastState,
			Banned: now.Before(v.bannedUntil), Foreign: v.foreign, Releases: len(v.rels), Error: v.lastErr}
		if s.Banned {
			s.BannedUntil, s.BanReason = v.bannedUntil, v.banReason
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b peerproto.PeerStatus) int { return strings.Compare(a.Addr, b.Addr) })
	return out
}
