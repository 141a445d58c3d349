package swarm

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/agent/fetch"
	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/internal/clocktest"
	"github.com/fleetcast/fleetcast/internal/releasetest"
	"github.com/fleetcast/fleetcast/manifest"
)

// t0 is where the tests' fake clocks start.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// memPeer is an in-memory peer: it serves chunks from a releasetest.Source, and can
// be made to corrupt them, fail, hang until cancelled, or answer only once
// a channel is closed.
type memPeer struct {
	*releasetest.Source
	corrupt, fail, hang bool
	busy                bool          // answer 503
	after               chan struct{} // if not nil, answer once it is closed (or the test's context is done)
	cur, peak           atomic.Int32  // requests in flight, and their most
}

func (p *memPeer) Chunk(ctx context.Context, c manifest.Chunk, buf []byte) ([]byte, error) {
	n := p.cur.Add(1)
	defer p.cur.Add(-1)
	for {
		old := p.peak.Load()
		if n <= old || p.peak.CompareAndSwap(old, n) {
			break
		}
	}
	if p.after != nil {
		select {
		case <-p.after:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	switch {
	case p.hang:
		<-ctx.Done()
		return nil, ctx.Err()
	case p.fail:
		return nil, &fetch.StatusError{Code: 500}
	case p.busy:
		return nil, &fetch.StatusError{Code: 503}
	case p.corrupt:
		return nil, fmt.Errorf("chunk has SHA-256 %s: %w", manifest.Digest{}, manifest.ErrMismatch)
	}
	return p.Source.Chunk(ctx, c, buf)
}

// memFleet is a View over in-memory peers.
type memFleet struct {
	mu        sync.Mutex
	holders   []Holder
	bans      map[string]string
	onBan     func(addr string) // if not nil, called at each ban
	ch        chan struct{}
	snapshots int // Snapshot calls
}

func newMemFleet() *memFleet { return &memFleet{bans: map[string]string{}, ch: make(chan struct{})} }

// add makes a peer that holds the chunks of m at the indexes in have (nil:
// all), with progress at when.
func (f *memFleet) add(addr string, m *manifest.Manifest, have func(i int) bool, src Source, when time.Time) {
	b := bitmap(len(m.Chunks), func(i int) bool { return have == nil || have(i) })
	none := bitmap(len(m.Chunks), func(int) bool { return false })
	f.mu.Lock()
	defer f.mu.Unlock()
	f.holders = append(f.holders, Holder{Addr: addr, ID: fmt.Sprintf("%016x", len(f.holders)+1), Bits: b, Fetching: none, Progress: when, Fetch: src})
}

// fetching makes peer addr fetch the chunks at the indexes in set from the
// origin; it does not report a change.
func (f *memFleet) fetching(addr string, m *manifest.Manifest, set func(i int) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.holders {
		if f.holders[i].Addr == addr {
			f.holders[i].Fetching = bitmap(len(m.Chunks), set)
		}
	}
}

// change closes the channel Wake returned, as the peer manager does when
// a peer's state changes.
func (f *memFleet) change() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.ch)
	f.ch = make(chan struct{})
}

func bitmap(n int, set func(i int) bool) []byte {
	bits := make([]bool, n)
	for i := range bits {
		bits[i] = set(i)
	}
	b, err := peerproto.DecodeBitmap(peerproto.EncodeBitmap(bits), n)
	if err != nil {
		panic(err)
	}
	return b
}

func (f *memFleet) Snapshot(manifest.ReleaseID) []Holder {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snapshots++
	return f.unbannedLocked()
}

func (f *memFleet) unbannedLocked() []Holder {
	var out []Holder
	for _, h := range f.holders {
		if _, banned := f.bans[h.Addr]; !banned {
			out = append(out, h)
		}
	}
	return out
}

func (f *memFleet) Usable() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.unbannedLocked())
}

func (f *memFleet) Wake() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ch
}

func (f *memFleet) Ban(addr, reason string) {
	f.mu.Lock()
	f.bans[addr] = reason
	f.mu.Unlock()
	if f.onBan != nil {
		f.onBan(addr)
	}
}

// testOriginConns is the origin workers of the tests' assemblies; they
// have sw.Conns peer workers besides.
const testOriginConns = 2

// assembling is an assembly running in the background.
type assembling struct {
	over context.Context // done once Assemble has returned
	tr   peerproto.Transfer
	err  error
}

// startAssemble assembles m in a new store in the background, with
// testOriginConns origin workers.
func startAssemble(ctx context.Context, t *testing.T, m *manifest.Manifest, origin Source, sw *Config) *assembling {
	t.Helper()
	s := newTestStore(t)
	dir := s.ReleaseDir(m.ID())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	releasetest.WriteManifest(t, dir, m)
	over, end := context.WithCancel(context.Background())
	a := &assembling{over: over}
	go func() {
		defer end()
		a.tr, a.err = Assemble(ctx, s, m, dir, origin, testOriginConns, sw, nil, slog.New(slog.DiscardHandler))
	}()
	return a
}

// wait waits for Assemble to return, and returns what it returned.
func (a *assembling) wait() (peerproto.Transfer, error) {
	<-a.over.Done()
	return a.tr, a.err
}

// swarmAssemble assembles m while it moves clk on by sw.Pause each time
// every worker of the assembly waits on it: time passes only while nothing
// else can happen, as in a simulation, so the pauses and origin_grace are
// exact and no test waits for them. The 30 s context is a bound on
// failure.
func swarmAssemble(t *testing.T, m *manifest.Manifest, origin Source, sw *Config, clk *clocktest.Clock) peerproto.Transfer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := startAssemble(ctx, t, m, origin, sw)
	for clk.BlockUntil(a.over, testOriginConns+sw.Conns) == nil {
		clk.Advance(sw.Pause)
	}
	tr, err := a.wait()
	if err != nil {
		t.Fatalf("assemble: %v", err)
	}
	return tr
}

// swarmConf is the tests' Config: this agent's ID is 00000000000000ff
// (memFleet.add numbers its peers' from 1), and it pauses a peer 10 ms
// after a failure.
func swarmConf(f View, grace time.Duration, clk Clock) *Config {
	return &Config{View: f, Self: "00000000000000ff", Grace: grace, PerPeer: 2, Conns: 4, Pause: 10 * time.Millisecond, Clock: clk}
}

func TestSwarm(t *testing.T) {
	type result struct {
		tr    peerproto.Transfer
		fleet *memFleet
		peers []*memPeer
		m     *manifest.Manifest
	}
	tests := []struct {
		name  string
		setup func(m *manifest.Manifest, data *releasetest.Source, f *memFleet, now time.Time) []*memPeer
		check func(t *testing.T, r result)
	}{{
		name:  "no peers: everything from the origin",
		setup: func(*manifest.Manifest, *releasetest.Source, *memFleet, time.Time) []*memPeer { return nil },
		check: func(t *testing.T, r result) {
			if r.tr.PeerChunks != 0 || r.tr.OriginReasons[ReasonNoPeers] != int64(len(r.m.Chunks)) {
				t.Errorf("transfer %+v: want every chunk from the origin, reason %s", r.tr, ReasonNoPeers)
			}
		},
	}, {
		name: "two full peers: nothing from the origin, at most per_peer requests each",
		setup: func(m *manifest.Manifest, data *releasetest.Source, f *memFleet, now time.Time) []*memPeer {
			p1, p2 := &memPeer{Source: data}, &memPeer{Source: data}
			f.add("p1", m, nil, p1, now)
			f.add("p2", m, nil, p2, now)
			return []*memPeer{p1, p2}
		},
		check: func(t *testing.T, r result) {
			if r.tr.Origin != 0 || r.tr.PeerChunks != int64(len(r.m.Chunks)) {
				t.Errorf("transfer %+v: want every chunk from peers", r.tr)
			}
			for i, p := range r.peers {
				if p.peak.Load() > 2 {
					t.Errorf("peer %d had %d requests in flight, cap 2", i, p.peak.Load())
				}
				if p.Total() == 0 {
					t.Errorf("peer %d was never asked", i)
				}
			}
		},
	}, {
		name: "a peer that sends bad chunks is banned, the chunks come from another",
		setup: func(m *manifest.Manifest, data *releasetest.Source, f *memFleet, now time.Time) []*memPeer {
			// The good peer answers once the bad one is banned. Else, on a
			// loaded machine, the bad peer's first request could still be
			// under way when the good one had served every other chunk:
			// the end game asks the good one for that chunk too, and its
			// answer ends the bad one's request as cancelled, which is
			// rightly no ground for a ban.
			banned := make(chan struct{})
			var once sync.Once
			f.onBan = func(addr string) {
				if addr == "bad" {
					once.Do(func() { close(banned) })
				}
			}
			f.add("bad", m, nil, &memPeer{Source: data, corrupt: true}, now)
			f.add("good", m, nil, &memPeer{Source: data, after: banned}, now)
			return nil
		},
		check: func(t *testing.T, r result) {
			if _, ok := r.fleet.bans["bad"]; !ok || len(r.fleet.bans) != 1 {
				t.Errorf("bans = %v, want the bad peer only", r.fleet.bans)
			}
			if r.tr.Origin != 0 {
				t.Errorf("origin bytes %d, want 0", r.tr.Origin)
			}
		},
	}, {
		name: "a peer whose bitmaps do not fit the manifest is banned",
		setup: func(m *manifest.Manifest, data *releasetest.Source, f *memFleet, now time.Time) []*memPeer {
			f.add("liar", m, nil, &memPeer{Source: data}, now)
			f.holders[0].Bits = append(f.holders[0].Bits, 0xff) // claims 8 more chunks
			f.add("good", m, nil, &memPeer{Source: data}, now)
			return nil
		},
		check: func(t *testing.T, r result) {
			if _, ok := r.fleet.bans["liar"]; !ok || r.tr.Origin != 0 {
				t.Errorf("bans %v, transfer %+v: want the liar banned, every chunk from the good peer", r.fleet.bans, r.tr)
			}
		},
	}, {
		name: "a peer that fails: its chunks come from the origin",
		setup: func(m *manifest.Manifest, data *releasetest.Source, f *memFleet, now time.Time) []*memPeer {
			f.add("busy", m, nil, &memPeer{Source: data, fail: true}, now)
			return nil
		},
		check: func(t *testing.T, r result) {
			if r.tr.OriginReasons[ReasonPeersFailed] != int64(len(r.m.Chunks)) || len(r.fleet.bans) != 0 {
				t.Errorf("transfer %+v, bans %v: want every chunk from the origin after the peer failed, no ban", r.tr, r.fleet.bans)
			}
		},
	}, {
		name: "a peer that stays busy: asked three times a chunk, then the origin",
		setup: func(m *manifest.Manifest, data *releasetest.Source, f *memFleet, now time.Time) []*memPeer {
			p := &memPeer{Source: data, busy: true}
			f.add("busy", m, nil, p, now)
			return []*memPeer{p}
		},
		check: func(t *testing.T, r result) {
			if r.tr.OriginReasons[ReasonPeersFailed] != int64(len(r.m.Chunks)) || len(r.fleet.bans) != 0 {
				t.Errorf("transfer %+v, bans %v: want every chunk from the origin after the peer stayed busy, no ban", r.tr, r.fleet.bans)
			}
		},
	}, {
		name: "end game: a chunk stuck at a hanging peer is asked of another",
		setup: func(m *manifest.Manifest, data *releasetest.Source, f *memFleet, now time.Time) []*memPeer {
			f.add("hang", m, func(i int) bool { return i == 0 }, &memPeer{Source: data, hang: true}, now)
			f.add("good", m, func(i int) bool { return true }, &memPeer{Source: data}, now)
			return nil
		},
		check: func(t *testing.T, r result) {
			if r.tr.Origin != 0 || r.tr.PeerChunks != int64(len(r.m.Chunks)) {
				t.Errorf("transfer %+v: want every chunk from peers", r.tr)
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := releasetest.NewSource()
			m := releasetest.Release(t, 1, releasetest.Data(7, 600<<10), data)
			clk := clocktest.New(t0)
			f := newMemFleet()
			peers := tt.setup(m, data, f, clk.Now())
			tr := swarmAssemble(t, m, originOf(m, data), swarmConf(f, 0, clk), clk)
			tt.check(t, result{tr: tr, fleet: f, peers: peers, m: m})
		})
	}
}

// originOf is an origin that serves m's chunks from data.
func originOf(m *manifest.Manifest, data *releasetest.Source) *releasetest.Source {
	origin := releasetest.NewSource()
	for _, c := range m.Chunks {
		origin.Add(c.SHA256, data.Get(c.SHA256))
	}
	return origin
}

func distinctChunks(m *manifest.Manifest) []manifest.Chunk {
	seen := map[manifest.Digest]bool{}
	var out []manifest.Chunk
	for _, c := range m.Chunks {
		if !seen[c.SHA256] {
			seen[c.SHA256] = true
			out = append(out, c)
		}
	}
	return out
}

// jobsOf makes a job of each chunk of m, as plan does for an empty store.
func jobsOf(m *manifest.Manifest) []*job {
	var jobs []*job
	for i, c := range m.Chunks {
		jobs = append(jobs, &job{chunk: c, indexes: []int{i}})
	}
	return jobs
}

// TestSwarmRarestFirst: of two pending chunks, the one fewer peers hold is
// asked for first.
func TestSwarmRarestFirst(t *testing.T) {
	data := releasetest.NewSource()
	m := releasetest.Release(t, 1, releasetest.Data(8, 200<<10), data)
	if len(m.Chunks) < 3 {
		t.Fatalf("%d chunks; want at least 3", len(m.Chunks))
	}
	clk := clocktest.New(t0)
	f := newMemFleet()
	rare := len(m.Chunks) - 1
	f.add("p1", m, nil, data, clk.Now())
	f.add("p2", m, func(i int) bool { return i != rare }, data, clk.Now())
	f.add("p3", m, func(i int) bool { return i != rare }, data, clk.Now())
	s := newSched(len(m.Chunks), jobsOf(m), swarmConf(f, time.Second, clk), manifest.ReleaseID{})
	s.refreshLocked()
	for range 20 {
		if tk := s.pickPeerLocked(); tk == nil || tk.j.indexes[0] != rare || tk.peer.Addr != "p1" {
			t.Fatalf("picked %+v; want the rare chunk %d from p1", tk, rare)
		}
	}
}

// pick takes a task for an origin worker (peer false) or a peer worker and
// starts it, as next does, or returns nil; it does not refresh the peers.
func pick(t *testing.T, s *sched, peer bool) *task {
	s.mu.Lock()
	defer s.mu.Unlock()
	var tk *task
	if peer {
		tk = s.pickPeerLocked()
	} else {
		tk = s.pickOriginLocked()
	}
	if tk != nil {
		s.startLocked(t.Context(), tk)
	}
	return tk
}

// TestSwarmWaitsForParticipants: with peers up but none on this release
// yet, the origin is not asked before origin_grace has passed.
func TestSwarmWaitsForParticipants(t *testing.T) {
	const grace = time.Hour
	data := releasetest.NewSource()
	m := releasetest.Release(t, 1, releasetest.Data(9, 100<<10), data)
	clk := clocktest.New(t0)
	other := &relKeyFleet{memFleet: newMemFleet(), n: 1}
	s := newSched(len(m.Chunks), jobsOf(m)[:1], swarmConf(other, grace, clk), manifest.ReleaseID{})
	s.refreshLocked()
	if tk := pick(t, s, false); tk != nil {
		t.Fatalf("picked %+v at once; want to wait for peers to take part", tk)
	}
	// A job left to others is looked at again every originPass: the last
	// look before origin_grace is one originPass before it.
	clk.Advance(grace - originPass)
	if tk := pick(t, s, false); tk != nil {
		t.Fatalf("picked %+v before origin_grace; want to wait for peers to take part", tk)
	}
	clk.Advance(originPass)
	if tk := pick(t, s, false); tk == nil || tk.reason != ReasonNoPeers {
		t.Fatalf("picked %+v after origin_grace; want the origin, reason %s", tk, ReasonNoPeers)
	}
}

// relKeyFleet has n usable peers that take part in no release.
type relKeyFleet struct {
	*memFleet
	n int
}

func (f *relKeyFleet) Usable() int { return f.n }

// BenchmarkSchedPicks: picking and finishing every job of a release of
// manifest.MaxChunks chunks costs about the same per job as of a small one
// (no pick scans the whole queue).
func BenchmarkSchedPicks(b *testing.B) {
	for _, n := range []int{1024, manifest.MaxChunks} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			m := &manifest.Manifest{Chunks: make([]manifest.Chunk, n)}
			for b.Loop() {
				jobs := make([]*job, n)
				for i := range jobs {
					m.Chunks[i].SHA256[0], m.Chunks[i].SHA256[1], m.Chunks[i].SHA256[2] = byte(i), byte(i>>8), byte(i>>16)
					jobs[i] = &job{chunk: m.Chunks[i], indexes: []int{i}}
				}
				s := newSched(len(m.Chunks), jobs, nil, manifest.ReleaseID{})
				for range n {
					s.mu.Lock()
					t := s.pickOriginLocked()
					s.startLocked(context.Background(), t)
					s.mu.Unlock()
					s.finish(t, nil)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/job")
		})
	}
}

// BenchmarkSchedPicksSwarm: with three other agents taking part, this one
// picks its own share of a release for the origin; the others' chunks are
// looked at again at most every originPass, not at every pick. It runs on
// the system clock, as the agent does.
func BenchmarkSchedPicksSwarm(b *testing.B) {
	for _, n := range []int{1024, manifest.MaxChunks} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			m := &manifest.Manifest{Chunks: make([]manifest.Chunk, n)}
			f := newMemFleet()
			for i := range 3 {
				f.add(fmt.Sprint("p", i), m, func(int) bool { return false }, nil, time.Now().Add(time.Hour))
			}
			picked := 0
			for b.Loop() {
				jobs := make([]*job, n)
				for i := range jobs {
					m.Chunks[i].SHA256[0], m.Chunks[i].SHA256[1], m.Chunks[i].SHA256[2] = byte(i), byte(i>>8), byte(i>>16)
					jobs[i] = &job{chunk: m.Chunks[i], indexes: []int{i}}
				}
				s := newSched(len(m.Chunks), jobs, swarmConf(f, time.Hour, nil), manifest.ReleaseID{})
				s.refreshLocked()
				for {
					s.mu.Lock()
					t := s.pickOriginLocked()
					if t == nil {
						s.mu.Unlock()
						break
					}
					s.startLocked(context.Background(), t)
					s.mu.Unlock()
					s.finish(t, nil)
					picked++
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(picked), "ns/pick")
			b.ReportMetric(float64(picked)/float64(b.N*n), "share")
		})
	}
}

// TestSwarmUnfollowedParticipants: a participant that the peer manager
// does not follow (empty bitmaps: it holds nothing this agent can ask for)
// is not taken for a peer that lies about the chunk count, and keeps its
// rendezvous share: a chunk it ranks first for is left to it.
func TestSwarmUnfollowedParticipants(t *testing.T) {
	data := releasetest.NewSource()
	m := releasetest.Release(t, 1, releasetest.Data(9, 100<<10), data)
	clk := clocktest.New(t0)
	sw := swarmConf(nil, time.Hour, clk)
	other := ""
	for i := 0; other == ""; i++ {
		if id := fmt.Sprintf("%016x", i); rendezvous(id, m.Chunks[0].SHA256) > rendezvous(sw.Self, m.Chunks[0].SHA256) {
			other = id
		}
	}
	f := newMemFleet()
	f.holders = []Holder{{Addr: "unfollowed:1", ID: other, Bits: []byte{}, Progress: clk.Now()}}
	sw.View = f
	s := newSched(len(m.Chunks), jobsOf(m)[:1], sw, manifest.ReleaseID{})
	s.refreshLocked()
	if len(f.bans) > 0 || len(s.holders) != 1 {
		t.Fatalf("bans %v, holders %d; want none and the participant", f.bans, len(s.holders))
	}
	if tk := pick(t, s, false); tk != nil {
		t.Fatalf("took %+v from the origin; want it left to %s, ranked first", tk, other)
	}
}
