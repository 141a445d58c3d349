package swarm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/fleetcast/fleetcast/agent/fetch"
	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/manifest"
)

// Why a chunk was fetched from the origin (Transfer.OriginReasons).
const (
	ReasonNoPeers     = "no-peers"        // no other agent of the fleet takes part in this release
	ReasonAssigned    = "assigned"        // this agent is the chunk's first choice among those that take part
	ReasonPeerStalled = "peer-stalled"    // the agents ranked before this one made no progress for origin_grace
	ReasonPeersFailed = "peers-failed"    // every peer that had it failed to deliver it
	ReasonNoHolder    = "no-peer-has-it"  // origin_grace is 0: no waiting for peers
	ReasonWaited      = "waited-too-long" // waited in vain for others (originReasonLocked)
)

// Kinds of task that are not origin fetches.
const (
	taskLocal   = "local"    // a copy in the store (delta)
	taskEndGame = "end-game" // a second peer for a chunk in flight
)

// View is what a scheduler needs of the peers: the agent's peer manager,
// or an in-memory fleet in tests. Its methods are safe for concurrent use.
type View interface {
	Snapshot(key manifest.ReleaseID) []Holder // the usable peers taking part in a release
	Usable() int                              // usable peers in all
	Wake() <-chan struct{}                    // closed at the next change
	Ban(addr, reason string)
}

// Holder is a peer's part in one release, as a scheduler sees it.
type Holder struct {
	Addr     string
	ID       string
	Bits     []byte // nil: holds nothing of the release yet
	Fetching []byte // chunks it is fetching from the origin
	Progress time.Time
	Fetch    Source
}

// Config turns on peers for an assembly.
type Config struct {
	View    View
	Self    string        // this agent's id
	Grace   time.Duration // origin_grace
	PerPeer int           // peer_requests_per_peer
	Conns   int           // peer_connections
	Pause   time.Duration // first pause of a peer after a failure; 0: 1s
	MinRate int64         // min_throughput, bytes/s: bounds the wait for another agent's origin fetch
	Clock   Clock         // nil: SystemClock
}

// task is one request for a job's chunk: from the origin (peer == nil) or
// from a peer.
type task struct {
	j      *job
	peer   *Holder
	reason string
	ctx    context.Context
	cancel context.CancelFunc
	begun  time.Time // when it started, on the sched's clock
}

// jobState is a job's scheduling state, guarded by the sched's lock.
type jobState struct {
	done        bool
	running     int             // tasks in flight
	tasks       []*task         // in flight
	failed      map[string]bool // peers that failed to deliver it
	busy        map[string]int  // busy answers by peer
	originFails int
	waitSince   time.Time // when it was first left to others
	fetchSeen   time.Time // when another agent was first seen fetching it from the origin
	queued      bool      // in pending or local, waiting for a task
}

// sched decides, for one assembly, which chunk to fetch next and from
// where (docs/SPEC.md §8, "Scheduling"): peers that have a chunk are asked,
// rarest chunk first with random tie-breaks, at most per_peer requests to
// one peer; a chunk no peer has goes to the origin from the one agent that
// rendezvous hashing names for it, or from the next ones if those make no
// progress for origin_grace. When all that is left is in flight, chunks are
// asked of a second peer (end game). Without peers, every chunk goes to the
// origin in artifact order, as for a single machine.
type sched struct {
	chunks  int  // the manifest's chunk count: the size of a peer's bitmaps
	pm      View // nil: origin only
	clock   Clock
	key     manifest.ReleaseID
	self    string
	grace   time.Duration
	maxWait time.Duration // longest a chunk nobody fetches waits for others before the origin: twice grace
	minRate int64         // bytes/s an origin fetch of another agent must sustain, at least
	perPeer int

	mu         sync.Mutex
	originRate float64   // bytes/s of this agent's own origin fetches, a moving average; 0 until one ends
	pending    []*job    // to fetch, artifact order at first; entries not queued are skipped
	head       int       // pending[:head] holds no queued job
	live       int       // queued jobs in pending
	local      []*job    // to copy from the store, in order
	originScan int       // where the next origin pick looks first
	lastPass   time.Time // when the origin scan last started again from head
	state      map[*job]*jobState
	remaining  int
	inflight   map[string]int       // per peer
	pauseUntil map[string]time.Time // per peer, after a failure
	fails      map[string]int       // per peer, failures in a row
	pauseBase  time.Duration        // first pause after a failure, doubled each time
	holders    []Holder
	serving    []*Holder // the holders with a bitmap: those that may hold a chunk (setHoldersLocked)
	fleet      int       // usable peers, whether or not they take part
	started    time.Time // origin_grace for participants to show up runs from here
	refreshed  time.Time
	changed    <-chan struct{} // the peers' change channel at the last refresh
	err        error
	originOff  time.Time // no origin requests before this (after a failure)
	wakeCh     chan struct{}
}

func newSched(chunks int, jobs []*job, sw *Config, key manifest.ReleaseID) *sched {
	var clock Clock = SystemClock{}
	if sw != nil && sw.Clock != nil {
		clock = sw.Clock
	}
	s := &sched{chunks: chunks, key: key, clock: clock, state: make(map[*job]*jobState, len(jobs)),
		remaining: len(jobs), inflight: make(map[string]int), pauseUntil: make(map[string]time.Time),
		fails: make(map[string]int), pauseBase: time.Second,
		wakeCh: make(chan struct{}), started: clock.Now()}
	if sw != nil {
		s.pm, s.self, s.grace, s.perPeer = sw.View, sw.Self, sw.Grace, sw.PerPeer
		if sw.Pause > 0 {
			s.pauseBase = sw.Pause
		}
		s.maxWait, s.minRate = 2*sw.Grace, sw.MinRate
	}
	for _, j := range jobs {
		s.state[j] = &jobState{}
		s.pushLocked(j)
	}
	return s
}

// wakeLocked wakes every waiting worker.
func (s *sched) wakeLocked() {
	close(s.wakeCh)
	s.wakeCh = make(chan struct{})
}

// waitTick is the longest a worker waits before it looks again: the rules
// of origin_grace and of the pauses are measured in time, not only in
// events.
const waitTick = 200 * time.Millisecond

// wait blocks until something changes (ch), the peers' views change since
// the last snapshot (peers), a short tick passes on s.clock, or ctx is done.
func (s *sched) wait(ctx context.Context, ch, peers <-chan struct{}) {
	tick, stop := s.clock.NewTimer(min(waitTick, s.pauseBase))
	defer stop()
	select {
	case <-ch:
	case <-peers:
	case <-tick:
	case <-ctx.Done():
	}
}

// next returns the next task for an origin worker (peer false) or a peer
// worker, or nil when the assembly is over.
func (s *sched) next(ctx context.Context, peer bool) *task {
	for {
		t, ch, peers, over := s.poll(ctx, peer)
		switch {
		case over:
			return nil
		case t != nil:
			return t
		}
		s.wait(ctx, ch, peers)
	}
}

// poll is one decision of next, without the waiting: a task started now,
// or nil and the channels to wait on (ch: this scheduler's changes, peers:
// the peers' views), or over when the assembly is over.
func (s *sched) poll(ctx context.Context, peer bool) (t *task, ch, peers <-chan struct{}, over bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.remaining == 0 || s.err != nil || ctx.Err() != nil {
		return nil, nil, nil, true
	}
	s.refreshLocked()
	if peer {
		t = s.pickPeerLocked()
	} else {
		t = s.pickOriginLocked()
	}
	if t != nil {
		s.startLocked(ctx, t)
	}
	return t, s.wakeCh, s.changed, false
}

// refreshEvery is how old a snapshot of the peers may grow when they
// report no change: peers go stale with time alone.
const refreshEvery = time.Second

// refreshLocked takes a new snapshot of the peers when they changed since
// the last one, or refreshEvery passed.
func (s *sched) refreshLocked() {
	if s.pm == nil {
		return
	}
	now := s.clock.Now()
	if s.changed != nil && now.Sub(s.refreshed) < refreshEvery {
		select {
		case <-s.changed:
		default:
			return
		}
	}
	s.changed = s.pm.Wake()
	s.fleet, s.refreshed = s.pm.Usable(), now
	s.setHoldersLocked(s.pm.Snapshot(s.key))
	// A peer's bitmaps must be of this release's chunk count: one that
	// claims another count for a signed release is lying.
	want := (s.chunks + 7) / 8
	for _, h := range s.holders {
		if len(h.Bits) == 0 && len(h.Fetching) == 0 {
			continue // follows the channel, not started on this release, or not followed: holds nothing to ask for
		}
		if len(h.Bits) != want || len(h.Fetching) != want {
			s.pm.Ban(h.Addr, fmt.Sprintf("state for %s has bitmaps of %d bytes, the manifest has %d chunks", s.key, len(h.Bits), s.chunks))
			s.setHoldersLocked(removeHolder(s.holders, h.Addr))
		}
	}
}

// setHoldersLocked sets the holders, and which of them may serve a chunk:
// with thousands of participants, most are not followed and hold nothing
// to ask for, and the peer picks look at the others alone.
func (s *sched) setHoldersLocked(hs []Holder) {
	s.holders, s.serving = hs, s.serving[:0]
	for i := range hs {
		if len(hs[i].Bits) > 0 {
			s.serving = append(s.serving, &hs[i])
		}
	}
}

func (s *sched) startLocked(ctx context.Context, t *task) {
	t.ctx, t.cancel = context.WithCancel(ctx)
	t.begun = s.clock.Now()
	st := s.state[t.j]
	if st.queued {
		s.popLocked(t.j)
	}
	st.running++
	st.tasks = append(st.tasks, t)
	if t.peer != nil {
		s.inflight[t.peer.Addr]++
	}
}

// pushLocked queues a job for a task: to the local queue if the store has
// it, else to pending.
func (s *sched) pushLocked(j *job) {
	st := s.state[j]
	if st.queued {
		return
	}
	st.queued = true
	if j.local != nil {
		s.local = append(s.local, j)
		return
	}
	s.pending = append(s.pending, j)
	s.live++
}

// popLocked takes a queued job out of its queue: at once from the
// accounting, lazily from the slices (compacted when half is dead), so
// that a pick costs no more than the jobs it looks at.
func (s *sched) popLocked(j *job) {
	st := s.state[j]
	st.queued = false
	if j.local != nil {
		return // the local queue is consumed from its head
	}
	s.live--
	if len(s.pending) > 64 && 2*s.live < len(s.pending)-s.head {
		live := s.pending[:0]
		seen := make(map[*job]bool, s.live)
		for _, x := range s.pending[s.head:] {
			// A job queued again while its old entry was still here
			// appears twice: keep one.
			if s.state[x].queued && !seen[x] {
				seen[x] = true
				live = append(live, x)
			}
		}
		clear(s.pending[len(live):])
		s.pending, s.head, s.originScan = live, 0, 0
	}
}

// queuedLocked reports whether pending[i] is still queued, advancing head
// past the dead prefix.
func (s *sched) queuedLocked(i int) bool {
	ok := s.state[s.pending[i]].queued
	if !ok && i == s.head {
		s.head++
	}
	return ok
}

// usableLocked: h may be asked for job j now.
func (s *sched) usableLocked(h *Holder, j *job, now time.Time) bool {
	// The bit first: most holders lack most chunks, and it is the cheapest.
	return peerproto.BitSet(h.Bits, j.indexes[0]) && !s.state[j].failed[h.Addr] && s.inflight[h.Addr] < s.perPeer &&
		now.After(s.pauseUntil[h.Addr])
}

// originPass is how often the origin scan starts again from the head.
const originPass = 200 * time.Millisecond

// maxPeerFails is the failures in a row after which a peer no longer
// counts as having any chunk, so that the origin is asked instead.
const maxPeerFails = 3

// hasHolderLocked: a peer that has not failed again and again holds j and
// has not failed it.
func (s *sched) hasHolderLocked(j *job) bool {
	st := s.state[j]
	for _, h := range s.serving {
		if peerproto.BitSet(h.Bits, j.indexes[0]) && !st.failed[h.Addr] && s.fails[h.Addr] < maxPeerFails {
			return true
		}
	}
	return false
}

// pickOriginLocked takes, in artifact order, the first pending job that
// the store has (delta, no network) or that this agent should fetch from
// the origin now.
func (s *sched) pickOriginLocked() *task {
	now := s.clock.Now()
	for len(s.local) > 0 {
		j := s.local[0]
		s.local = s.local[1:]
		if s.state[j].queued {
			return &task{j: j, reason: taskLocal}
		}
	}
	if now.Before(s.originOff) {
		return nil
	}
	// The scan goes on from where the last pick stopped, and starts again
	// from the head at most every originPass: a job left to others is
	// looked at again a few times a second, not at every pick.
	for range 2 {
		for ; s.originScan < len(s.pending); s.originScan++ {
			i := s.originScan
			if !s.queuedLocked(i) {
				continue
			}
			if r := s.originReasonLocked(s.pending[i], now); r != "" {
				s.originScan++
				return &task{j: s.pending[i], reason: r}
			}
		}
		if now.Sub(s.lastPass) < originPass {
			return nil
		}
		s.lastPass, s.originScan = now, s.head
	}
	return nil
}

// originReasonLocked says why job j should go to the origin now, or "".
// A job that another agent fetches from the origin waits for that fetch as
// long as it takes at min_throughput (fetchWait); any other job left to
// others waits at most maxWait for each agent ranked before this one,
// whatever they claim, so that the agents waiting for it do not all take it
// over at once.
func (s *sched) originReasonLocked(j *job, now time.Time) string {
	if len(s.holders) > 0 && s.hasHolderLocked(j) {
		return "" // for the peer workers
	}
	r, fetched, ahead := s.originReason(j, now)
	st := s.state[j]
	switch {
	case r != "":
		return r
	case fetched:
		if st.fetchSeen.IsZero() {
			st.fetchSeen = now
		}
		if now.Sub(st.fetchSeen) > s.fetchWait(j) {
			return ReasonWaited
		}
	case st.waitSince.IsZero():
		st.waitSince = now
	case now.Sub(st.waitSince) > s.maxWait*time.Duration(max(ahead, 1)):
		return ReasonWaited
	}
	return ""
}

// fetchWait is how long a job waits for another agent's origin fetch: twice
// origin_grace, plus the chunk's time at min_throughput, or twice its time
// at the rate this agent's own origin fetches get when that is slower. On a
// slow origin link shared by the fleet, a fetch takes far longer than
// origin_grace, and fetching the chunk again would only slow every fetch
// down further: with a hundred agents each fetching four chunks at once on
// 40 Mbit/s, each fetch gets less than min_throughput, and a wait bounded by
// min_throughput alone made the fleet fetch most chunks several times
// (tools/fleetsim, N=100: 5.2x S).
func (s *sched) fetchWait(j *job) time.Duration {
	d := s.maxWait
	if s.minRate > 0 {
		d += time.Duration(float64(j.chunk.Size) / float64(s.minRate) * float64(time.Second))
	}
	if s.originRate > 0 && s.originRate < float64(s.minRate) {
		d = max(d, s.maxWait+2*time.Duration(float64(j.chunk.Size)/s.originRate*float64(time.Second)))
	}
	return d
}

// originFetchedLocked folds an origin fetch that ended well into
// originRate: the rate an origin fetch gets now, as other agents' fetches
// get it too.
func (s *sched) originFetchedLocked(t *task) {
	d := s.clock.Now().Sub(t.begun).Seconds()
	if d <= 0 || t.j.chunk.Size <= 0 {
		return
	}
	r := float64(t.j.chunk.Size) / d
	if s.originRate == 0 {
		s.originRate = r
	} else {
		s.originRate += 0.3 * (r - s.originRate)
	}
}

// originReason says why this agent should fetch job j from the origin, or
// "" to leave it to others; fetched reports that one of them is fetching it
// from the origin now, ahead how many agents rank before this one for it.
func (s *sched) originReason(j *job, now time.Time) (reason string, fetched bool, ahead int) {
	if len(s.holders) == 0 {
		if s.fleet > 0 && now.Sub(s.started) < s.grace {
			return "", false, 0 // peers are up but none has started on this release yet
		}
		return ReasonNoPeers, false, 0
	}
	for i := range s.holders {
		if peerproto.BitSet(s.holders[i].Bits, j.indexes[0]) {
			return ReasonPeersFailed, false, 0 // held, but only by peers that failed
		}
	}
	if s.grace == 0 {
		return ReasonNoHolder, false, 0
	}
	mine := rendezvous(s.self, j.chunk.SHA256)
	live := false
	for i := range s.holders {
		h := &s.holders[i]
		if s.fails[h.Addr] >= maxPeerFails {
			continue
		}
		if peerproto.BitSet(h.Fetching, j.indexes[0]) {
			return "", true, 0 // another agent is fetching it from the origin now
		}
		if rendezvous(h.ID, j.chunk.SHA256) > mine {
			ahead++
			progress := h.Progress
			if h.Bits == nil {
				progress = s.started // not started yet: given origin_grace from now
			}
			live = live || now.Sub(progress) < s.grace
		}
	}
	switch {
	case ahead == 0:
		return ReasonAssigned, false, 0
	case live:
		return "", false, ahead // a live agent ranked before this one will fetch it
	}
	return ReasonPeerStalled, false, ahead
}

// rendezvous is the weight of agent id for a chunk: the agent of highest
// weight among those taking part fetches the chunk from the origin.
func rendezvous(id string, d manifest.Digest) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	h.Write(d[:])
	var b [8]byte
	return binary.BigEndian.Uint64(h.Sum(b[:0]))
}

// pickPeerLocked takes the rarest pending job that a usable peer holds,
// breaking ties at random, from a random sample of at most 512 pending
// jobs; with no pending job a peer can serve, it doubles a job in flight
// from one peer (end game).
func (s *sched) pickPeerLocked() *task {
	if len(s.holders) == 0 {
		return nil
	}
	now := s.clock.Now()
	var best *job
	bestN, ties := 0, 0
	n := len(s.pending) - s.head
	start := 0
	if n > 0 {
		start = rand.N(n)
	}
	for k := range min(n, 512) {
		j := s.pending[s.head+(start+k)%n]
		if !s.state[j].queued {
			continue
		}
		c := 0
		for _, h := range s.serving {
			if s.usableLocked(h, j, now) {
				c++
			}
		}
		switch {
		case c == 0:
		case best == nil || c < bestN:
			best, bestN, ties = j, c, 1
		case c == bestN:
			ties++
			if rand.N(ties) == 0 {
				best = j
			}
		}
	}
	if best != nil {
		return &task{j: best, peer: s.pickHolderLocked(best, now)}
	}
	if s.live > 0 {
		return nil
	}
	return s.endGameLocked(now)
}

// pickHolderLocked: the usable holder of j with the fewest requests in
// flight, at random among equals.
func (s *sched) pickHolderLocked(j *job, now time.Time) *Holder {
	var best *Holder
	ties := 0
	for _, h := range s.serving {
		if !s.usableLocked(h, j, now) {
			continue
		}
		switch {
		case best == nil || s.inflight[h.Addr] < s.inflight[best.Addr]:
			best, ties = h, 1
		case s.inflight[h.Addr] == s.inflight[best.Addr]:
			ties++
			if rand.N(ties) == 0 {
				best = h
			}
		}
	}
	if best == nil {
		return nil
	}
	c := *best
	return &c
}

// endGameLocked asks a second peer for a chunk that one peer is serving.
func (s *sched) endGameLocked(now time.Time) *task {
	for j, st := range s.state {
		if st.done || st.running != 1 || st.tasks[0].peer == nil {
			continue
		}
		serving := st.tasks[0].peer.Addr
		for _, h := range s.serving {
			if h.Addr != serving && s.usableLocked(h, j, now) {
				c := *h
				return &task{j: j, peer: &c, reason: taskEndGame}
			}
		}
	}
	return nil
}

// finish records a task's end. It returns true when the caller should
// store the chunk: the first successful task of a job.
func (s *sched) finish(t *task, err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.wakeLocked()
	cancelled := t.ctx.Err() != nil // by the end game or the assembly, not the source's fault
	st := s.state[t.j]
	st.running--
	for i, x := range st.tasks {
		if x == t {
			st.tasks = append(st.tasks[:i], st.tasks[i+1:]...)
			break
		}
	}
	if t.peer != nil {
		s.inflight[t.peer.Addr]--
	}
	t.cancel()
	if st.done {
		return false
	}
	if err == nil {
		if t.peer != nil {
			s.fails[t.peer.Addr] = 0
		} else {
			s.originFetchedLocked(t)
		}
		st.done = true
		s.remaining--
		for _, x := range st.tasks {
			x.cancel() // end game: the other request is no longer needed
		}
		return true
	}
	if !cancelled {
		s.failedLocked(t, st, err)
	}
	if st.running == 0 && s.err == nil {
		s.pushLocked(t.j)
	}
	return false
}

// failedLocked handles a failed request: a bad chunk bans the peer; any other
// peer failure pauses it briefly and marks it failed for this chunk; an
// origin failure pauses the origin, and fails the assembly when no peer can
// help or the chunk failed three times.
func (s *sched) failedLocked(t *task, st *jobState, err error) {
	now := s.clock.Now()
	if t.peer != nil {
		if st.failed == nil {
			st.failed = make(map[string]bool)
		}
		st.failed[t.peer.Addr] = true
		var se *fetch.StatusError
		switch {
		case badData(err):
			s.pm.Ban(t.peer.Addr, err.Error())
			s.setHoldersLocked(removeHolder(s.holders, t.peer.Addr))
		case errors.As(err, &se) && (se.Code == http.StatusServiceUnavailable || se.Code == http.StatusTooManyRequests):
			// Busy serving others: ask again soon, of it or another; a
			// peer busy three times for this chunk counts as failed.
			if st.busy == nil {
				st.busy = make(map[string]int)
			}
			if st.busy[t.peer.Addr]++; st.busy[t.peer.Addr] < maxPeerFails {
				delete(st.failed, t.peer.Addr)
			}
			s.pauseUntil[t.peer.Addr] = now.Add(s.pauseBase)
		default:
			s.fails[t.peer.Addr]++
			s.pauseUntil[t.peer.Addr] = now.Add(s.pauseBase << min(s.fails[t.peer.Addr]-1, 5))
		}
		return
	}
	if t.j.local != nil {
		t.j.local = nil // the stored copy went bad: fetch it
		return
	}
	st.originFails++
	if len(s.holders) == 0 || st.originFails >= 3 {
		s.failLocked(err)
		return
	}
	s.originOff = now.Add(fetch.Backoff(time.Second, 10*time.Second, st.originFails))
}

// badData: the peer sent bytes that are not the chunk it claimed to have.
func badData(err error) bool {
	return errors.Is(err, manifest.ErrMismatch) || errors.Is(err, fetch.ErrTooLong)
}

func removeHolder(hs []Holder, addr string) []Holder {
	out := hs[:0:0]
	for _, h := range hs {
		if h.Addr != addr {
			out = append(out, h)
		}
	}
	return out
}

// fail ends the assembly with err (a failed write).
func (s *sched) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failLocked(err)
	s.wakeLocked()
}

// failLocked records the assembly's error and cancels every request in
// flight, so that it ends now rather than after peer_timeout.
func (s *sched) failLocked(err error) {
	if s.err != nil {
		return
	}
	s.err = err
	for _, st := range s.state {
		for _, t := range st.tasks {
			t.cancel()
		}
	}
}

func (s *sched) result() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
