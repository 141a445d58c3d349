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
	"github.com/fleetcast/fleetcast/internal/releasetest"
	"github.com/fleetcast/fleetcast/manifest"
)

// memPeer is an in-memory peer: it serves chunks from a releasetest.Source, and can
// be made to corrupt them, fail, hang until cancelled, or answer only once
// a channel is closed.
type memPeer struct {
	*releasetest.Source
	corrupt, fail, hang bool
	busy                bool          // answer 503
	after               chan struct{} // if not nil, answer once it is closed
	gaveUp              atomic.Bool   // waited memPeerAfterWait for after in vain
	cur, peak           atomic.Int32  // requests in flight, and their most
}

// memPeerAfterWait bounds a memPeer's wait for its after channel: a bound
// on failure, not a delay. It then answers, and the test reports what did
// not happen.
const memPeerAfterWait = 5 * time.Second

func (p *memPeer) Chunk(ctx context.Context, c manifest.Chunk, buf []byte) ([]byte, error) {
	n := p.cur.Add(1)
	defer p.cur.Add(-1)
	for {
		old := p.peak.Load()
		if n <= old || p.peak.CompareAndSwap(old, n) {
			break
		}
	}
	if p.after != nil && !p.gaveUp.Load() {
		select {
		case <-p.after:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(memPeerAfterWait):
			p.gaveUp.Store(true)
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

// memFleet is a swarmView over in-memory peers.
type memFleet struct {
	mu      sync.Mutex
	holders []Holder
	bans    map[string]string
	onBan   func(addr string) // if not nil, called at each ban
	ch      chan struct{}
}

func newMemFleet() *memFleet { return &memFleet{bans: map[string]string{}, ch: make(chan struct{})} }

// add makes a peer that holds the chunks of m at the indexes in have (nil:
// all), with progress at when.
func (f *memFleet) add(addr string, m *manifest.Manifest, have func(i int) bool, src Source, when time.Time) {
	bits := make([]bool, len(m.Chunks))
	for i := range bits {
		bits[i] = have == nil || have(i)
	}
	b, _ := peerproto.DecodeBitmap(peerproto.EncodeBitmap(bits), len(bits))
	none, _ := peerproto.DecodeBitmap(peerproto.EncodeBitmap(make([]bool, len(bits))), len(bits))
	f.mu.Lock()
	defer f.mu.Unlock()
	f.holders = append(f.holders, Holder{Addr: addr, ID: fmt.Sprintf("%016x", len(f.holders)+1), Bits: b, Fetching: none, Progress: when, Fetch: src})
}

func (f *memFleet) Snapshot(manifest.ReleaseID) []Holder {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Holder
	for _, h := range f.holders {
		if _, banned := f.bans[h.Addr]; !banned {
			out = append(out, h)
		}
	}
	return out
}

func (f *memFleet) Usable() int { return len(f.Snapshot(manifest.ReleaseID{})) }

func (f *memFleet) Wake() <-chan struct{} { return f.ch }

func (f *memFleet) Ban(addr, reason string) {
	f.mu.Lock()
	f.bans[addr] = reason
	f.mu.Unlock()
	if f.onBan != nil {
		f.onBan(addr)
	}
}

func swarmAssemble(t *testing.T, m *manifest.Manifest, origin Source, sw *Config) peerproto.Transfer {
	t.Helper()
	s := newTestStore(t)
	dir := s.ReleaseDir(m.ID())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	releasetest.WriteManifest(t, dir, m)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr, err := Assemble(ctx, s, m, dir, origin, 2, sw, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("assemble: %v", err)
	}
	return tr
}

func swarmConf(f *memFleet, grace time.Duration) *Config {
	return &Config{View: f, Self: "00000000000000ff", Grace: grace, PerPeer: 2, Conns: 4, Pause: 10 * time.Millisecond}
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
		setup func(m *manifest.Manifest, data *releasetest.Source, f *memFleet) []*memPeer
		grace time.Duration
		check func(t *testing.T, r result)
	}{{
		name:  "no peers: everything from the origin",
		setup: func(*manifest.Manifest, *releasetest.Source, *memFleet) []*memPeer { return nil },
		check: func(t *testing.T, r result) {
			if r.tr.PeerChunks != 0 || r.tr.OriginReasons[ReasonNoPeers] != int64(len(r.m.Chunks)) {
				t.Errorf("transfer %+v: want every chunk from the origin, reason %s", r.tr, ReasonNoPeers)
			}
		},
	}, {
		name: "two full peers: nothing from the origin, at most per_peer requests each",
		setup: func(m *manifest.Manifest, data *releasetest.Source, f *memFleet) []*memPeer {
			p1, p2 := &memPeer{Source: data}, &memPeer{Source: data}
			f.add("p1", m, nil, p1, time.Now())
			f.add("p2", m, nil, p2, time.Now())
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
		setup: func(m *manifest.Manifest, data *releasetest.Source, f *memFleet) []*memPeer {
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
			f.add("bad", m, nil, &memPeer{Source: data, corrupt: true}, time.Now())
			f.add("good", m, nil, &memPeer{Source: data, after: banned}, time.Now())
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
		setup: func(m *manifest.Manifest, data *releasetest.Source, f *memFleet) []*memPeer {
			f.add("liar", m, nil, &memPeer{Source: data}, time.Now())
			f.holders[0].Bits = append(f.holders[0].Bits, 0xff) // claims 8 more chunks
			f.add("good", m, nil, &memPeer{Source: data}, time.Now())
			return nil
		},
		check: func(t *testing.T, r result) {
			if _, ok := r.fleet.bans["liar"]; !ok || r.tr.Origin != 0 {
				t.Errorf("bans %v, transfer %+v: want the liar banned, every chunk from the good peer", r.fleet.bans, r.tr)
			}
		},
	}, {
		name: "a peer that fails: its chunks come from the origin",
		setup: func(m *manifest.Manifest, data *releasetest.Source, f *memFleet) []*memPeer {
			f.add("busy", m, nil, &memPeer{Source: data, fail: true}, time.Now())
			return nil
		},
		check: func(t *testing.T, r result) {
			if r.tr.OriginReasons[ReasonPeersFailed] != int64(len(r.m.Chunks)) || len(r.fleet.bans) != 0 {
				t.Errorf("transfer %+v, bans %v: want every chunk from the origin after the peer failed, no ban", r.tr, r.fleet.bans)
			}
		},
	}, {
		name: "a peer that stays busy: asked three times a chunk, then the origin",
		setup: func(m *manifest.Manifest, data *releasetest.Source, f *memFleet) []*memPeer {
			p := &memPeer{Source: data, busy: true}
			f.add("busy", m, nil, p, time.Now())
			return []*memPeer{p}
		},
		check: func(t *testing.T, r result) {
			if r.tr.OriginReasons[ReasonPeersFailed] != int64(len(r.m.Chunks)) || len(r.fleet.bans) != 0 {
				t.Errorf("transfer %+v, bans %v: want every chunk from the origin after the peer stayed busy, no ban", r.tr, r.fleet.bans)
			}
		},
	}, {
		name: "end game: a chunk stuck at a hanging peer is asked of another",
		setup: func(m *manifest.Manifest, data *releasetest.Source, f *memFleet) []*memPeer {
			f.add("hang", m, func(i int) bool { return i == 0 }, &memPeer{Source: data, hang: true}, time.Now())
			f.add("good", m, func(i int) bool { return true }, &memPeer{Source: data}, time.Now())
			return nil
		},
		check: func(t *testing.T, r result) {
			if r.tr.Origin != 0 || r.tr.PeerChunks != int64(len(r.m.Chunks)) {
				t.Errorf("transfer %+v: want every chunk from peers", r.tr)
			}
		},
	}, {
		name:  "rendezvous: this agent fetches its own share at once, the rest after the other stalls",
		grace: 300 * time.Millisecond,
		setup: func(m *manifest.Manifest, data *releasetest.Source, f *memFleet) []*memPeer {
			// A participant that holds nothing and makes no progress.
			f.add("idle", m, func(int) bool { return false }, &memPeer{Source: data}, time.Now())
			return nil
		},
		check: func(t *testing.T, r result) {
			mine := int64(0)
			other := fmt.Sprintf("%016x", 1)
			for _, c := range distinctChunks(r.m) {
				if rendezvous("00000000000000ff", c.SHA256) > rendezvous(other, c.SHA256) {
					mine++
				}
			}
			if r.tr.OriginReasons[ReasonAssigned] != mine || r.tr.OriginReasons[ReasonPeerStalled] != int64(len(distinctChunks(r.m)))-mine {
				t.Errorf("origin reasons %v: want %d assigned, the rest after the peer stalled", r.tr.OriginReasons, mine)
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := releasetest.NewSource()
			m := releasetest.Release(t, 1, releasetest.Data(7, 600<<10), data)
			f := newMemFleet()
			peers := tt.setup(m, data, f)
			origin := releasetest.NewSource()
			for _, c := range m.Chunks {
				origin.Add(c.SHA256, data.Get(c.SHA256))
			}
			tr := swarmAssemble(t, m, origin, swarmConf(f, tt.grace))
			tt.check(t, result{tr: tr, fleet: f, peers: peers, m: m})
		})
	}
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

// TestSwarmRarestFirst: of two pending chunks, the one fewer peers hold is
// asked for first.
func TestSwarmRarestFirst(t *testing.T) {
	data := releasetest.NewSource()
	m := releasetest.Release(t, 1, releasetest.Data(8, 200<<10), data)
	if len(m.Chunks) < 3 {
		t.Fatalf("%d chunks; want at least 3", len(m.Chunks))
	}
	f := newMemFleet()
	rare := len(m.Chunks) - 1
	f.add("p1", m, nil, data, time.Now())
	f.add("p2", m, func(i int) bool { return i != rare }, data, time.Now())
	f.add("p3", m, func(i int) bool { return i != rare }, data, time.Now())
	a := &assembly{m: m}
	var jobs []*job
	for i, c := range m.Chunks {
		jobs = append(jobs, &job{chunk: c, indexes: []int{i}})
	}
	s := newSched(a, jobs, swarmConf(f, time.Second), manifest.ReleaseID{})
	s.refreshLocked()
	for range 20 {
		if tk := s.pickPeerLocked(); tk == nil || tk.j.indexes[0] != rare || tk.peer.Addr != "p1" {
			t.Fatalf("picked %+v; want the rare chunk %d from p1", tk, rare)
		}
	}
}

// TestSwarmWaitsForParticipants: with peers up but none on this release
// yet, the origin is not asked before origin_grace.
func TestSwarmWaitsForParticipants(t *testing.T) {
	data := releasetest.NewSource()
	m := releasetest.Release(t, 1, releasetest.Data(9, 100<<10), data)
	f := newMemFleet()
	other := &relKeyFleet{memFleet: f, n: 1}
	a := &assembly{m: m}
	jobs := []*job{{chunk: m.Chunks[0], indexes: []int{0}}}
	s := newSched(a, jobs, &Config{View: other, Self: "00000000000000ff", Grace: time.Hour, PerPeer: 2}, manifest.ReleaseID{})
	s.refreshLocked()
	if tk := s.pickOriginLocked(); tk != nil {
		t.Fatalf("picked %+v at once; want to wait for peers to take part", tk)
	}
	s.started = time.Now().Add(-2 * time.Hour)
	s.lastPass = time.Time{} // as if originPass had passed
	if tk := s.pickOriginLocked(); tk == nil || tk.reason != ReasonNoPeers {
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
				s := newSched(&assembly{m: m}, jobs, nil, manifest.ReleaseID{})
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
// looked at again at most every originPass, not at every pick.
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
				s := newSched(&assembly{m: m}, jobs, swarmConf(f, time.Hour), manifest.ReleaseID{})
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
