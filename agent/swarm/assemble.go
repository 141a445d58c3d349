// Package swarm assembles a release's artifact in the store from its
// sources: chunks the store already holds (resume, delta), peers, and the
// origin. Its scheduler picks the rarest chunk first from the least busy
// peer, sends a chunk to the origin about once per fleet (rendezvous
// ranks), and ends with a second request for a stuck chunk (docs/SPEC.md
// §8). The agent gives it a View of the peers (its peer manager, or an
// in-memory fleet in tests) and a Counter for its metrics; Progress is what
// the status API shows of an assembly under way.
package swarm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/agent/store"
	"github.com/fleetcast/fleetcast/internal/atomicfile"
	"github.com/fleetcast/fleetcast/manifest"
)

// errWholeFile: the assembled file's SHA-256 is not the manifest's, although
// each chunk matched when it was stored.
var errWholeFile = errors.New("whole-file check failed")

// Source fetches a chunk into buf and returns it verified against its
// digest: the origin's fetch.Client, a peer's, or a test source.
type Source interface {
	Chunk(ctx context.Context, c manifest.Chunk, buf []byte) ([]byte, error)
}

// assembly fills one release's artifact.part, from the store where it can,
// from peers and from src (the origin) for the rest, while a second
// goroutine hashes the finished prefix of the file, so the whole-file check
// ends with the last chunk.
type assembly struct {
	m       *manifest.Manifest
	key     store.RelKey
	dir     string
	f       *os.File
	j       *store.Journal
	offsets []int64
	src     Source
	conns   int
	swarm   *Config         // nil: no peers
	held    *store.Holdings // nil: not served to peers
	prog    *Progress       // nil: not reported
	log     *slog.Logger

	mu   sync.Mutex
	cond *sync.Cond
	have []bool
	done bool // no more chunks will arrive (finished or failed)

	origin, originChunks, reused, dup atomic.Int64
	peer, peerChunks, peerFailures    atomic.Int64
	reasonMu                          sync.Mutex
	reasons                           map[string]int64
}

// Assemble makes releases/.../<seq>/artifact for m, which must already be
// verified, and returns what it transferred, reporting each chunk to p as
// it arrives. sw may be nil (no peers), p nil (not reported).
func Assemble(ctx context.Context, s *store.Store, m *manifest.Manifest, dir string, src Source, conns int, sw *Config, p *Progress, log *slog.Logger) (peerproto.Transfer, error) {
	tr := peerproto.Transfer{ArtifactBytes: m.Artifact.Size}
	a, err := openAssembly(s, m, dir, src, conns, log)
	if err != nil {
		return tr, err
	}
	defer a.close()
	a.swarm, a.prog = sw, p
	var chunks int
	tr.Resumed, chunks = a.present()
	p.Resumed(tr.Resumed, chunks)
	if tr.Resumed > 0 {
		log.Info("resuming release from the store", slog.Int64("verified_bytes", tr.Resumed))
	}
	for round := 0; ; round++ {
		err = a.fill(ctx, s.Index(dir))
		if err == nil || !errors.Is(err, errWholeFile) || round > 0 {
			break
		}
		// The whole file did not match although every chunk did when it was
		// stored: bytes were lost since (power loss, a damaged disk). Check
		// every chunk again and fetch the bad ones.
		log.Warn("whole-file check failed; re-checking every chunk", slog.String("reason", err.Error()))
		bad, rerr := a.recheck()
		if rerr != nil {
			return tr, rerr
		}
		tr.Refetched += int64(bad)
		p.SetPresent(a.present())
	}
	tr.Origin, tr.OriginChunks = a.origin.Load(), a.originChunks.Load()
	tr.Peer, tr.PeerChunks, tr.PeerFailures = a.peer.Load(), a.peerChunks.Load(), a.peerFailures.Load()
	tr.ReusedLocal, tr.Duplicate = a.reused.Load(), a.dup.Load()
	tr.OriginReasons = a.reasons
	if err != nil {
		return tr, err
	}
	if err := a.commit(); err != nil {
		return tr, err
	}
	if a.held != nil {
		a.held.Completed(a.key)
	}
	return tr, nil
}

func openAssembly(s *store.Store, m *manifest.Manifest, dir string, src Source, conns int, log *slog.Logger) (*assembly, error) {
	a := &assembly{m: m, key: store.RelKey{Product: m.Product, Channel: m.Channel, Seq: m.Sequence}, dir: dir, src: src,
		conns: max(conns, 1), held: s.Held, log: log, reasons: make(map[string]int64)}
	a.cond = sync.NewCond(&a.mu)
	a.offsets = make([]int64, len(m.Chunks))
	var off int64
	for i, c := range m.Chunks {
		a.offsets[i] = off
		off += c.Size
	}
	path := filepath.Join(dir, store.PartFile)
	fi, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	a.f = f
	fresh := statErr != nil || fi.Size() != m.Artifact.Size
	if fresh {
		os.Remove(filepath.Join(dir, store.HaveFile))
		if err := preallocate(f, m.Artifact.Size); err != nil {
			f.Close()
			return nil, fmt.Errorf("store: reserve %d bytes for %s: %w", m.Artifact.Size, path, err)
		}
	}
	if a.have, err = store.ReadJournal(filepath.Join(dir, store.HaveFile), len(m.Chunks)); err != nil {
		f.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	if a.j, err = store.OpenJournal(filepath.Join(dir, store.HaveFile)); err != nil {
		f.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	if a.held != nil {
		a.held.Add(a.key, dir, m, a.have, false)
	}
	return a, nil
}

// present sums the chunks in place.
func (a *assembly) present() (bytes int64, chunks int) {
	for i, h := range a.have {
		if h {
			bytes += a.m.Chunks[i].Size
			chunks++
		}
	}
	return bytes, chunks
}

func (a *assembly) close() {
	a.j.Close()
	a.f.Close()
}

// job is one distinct chunk still missing, with every index it appears at.
type job struct {
	chunk   manifest.Chunk
	indexes []int
	local   *store.Location // where the store already holds it, if anywhere
}

// plan lists the missing chunks in artifact order, one job per digest.
func (a *assembly) plan(idx map[manifest.Digest]store.Location) []*job {
	byDigest := make(map[manifest.Digest]*job)
	var jobs []*job
	for i, c := range a.m.Chunks {
		if a.have[i] {
			if _, ok := idx[c.SHA256]; !ok {
				// Repeats of this chunk are copied from here.
				idx[c.SHA256] = store.Location{Path: a.f.Name(), Offset: a.offsets[i], Size: c.Size}
			}
			continue
		}
		if j := byDigest[c.SHA256]; j != nil {
			j.indexes = append(j.indexes, i)
			continue
		}
		j := &job{chunk: c, indexes: []int{i}}
		if loc, ok := idx[c.SHA256]; ok && loc.Size == c.Size {
			j.local = &loc
		}
		byDigest[c.SHA256] = j
		jobs = append(jobs, j)
	}
	return jobs
}

// fill fetches every missing chunk, from the store, peers and the origin as
// the scheduler decides, while the prefix hasher runs, and returns the
// first error or the whole-file verdict.
func (a *assembly) fill(ctx context.Context, idx map[manifest.Digest]store.Location) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	a.mu.Lock()
	a.done = false
	a.mu.Unlock()
	hashed := make(chan error, 1)
	go func() { hashed <- a.hashPrefix(ctx) }()

	s := newSched(a, a.plan(idx), a.swarm, a.key)
	var wg sync.WaitGroup
	worker := func(peer bool) {
		defer wg.Done()
		var buf []byte // allocated at the first task: idle peer workers cost nothing
		for t := s.next(ctx, peer); t != nil; t = s.next(ctx, peer) {
			if buf == nil {
				buf = make([]byte, a.maxChunk())
			}
			if err := a.run(t, s, buf); err != nil {
				s.fail(err)
				cancel(err)
				return
			}
		}
	}
	for range a.conns {
		wg.Add(1)
		go worker(false)
	}
	if a.swarm != nil {
		for range a.swarm.Conns {
			wg.Add(1)
			go worker(true)
		}
	}
	wg.Wait()
	if err := s.result(); err != nil {
		cancel(err)
	}
	a.finish()
	herr := <-hashed
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return herr
}

func (a *assembly) maxChunk() int64 {
	var n int64
	for _, c := range a.m.Chunks {
		n = max(n, c.Size)
	}
	return n
}

// run carries out one task: it gets the chunk from the store, a peer or
// the origin, and, if it is the first to get it, writes it at every offset
// it appears at. Only a failed write is an error here; a failed fetch goes
// back to the scheduler.
func (a *assembly) run(t *task, s *sched, buf []byte) error {
	j := t.j
	var b []byte
	var err error
	switch {
	case t.reason == taskLocal:
		if b = a.readLocal(j, buf); b == nil {
			err = errors.New("stored copy unreadable or changed")
		}
	case t.peer != nil:
		b, err = t.peer.Fetch.Chunk(t.ctx, j.chunk, buf)
	default:
		if a.held != nil {
			a.held.Fetching(a.key, j.indexes[0], true)
			defer a.held.Fetching(a.key, j.indexes[0], false)
		}
		b, err = a.src.Chunk(t.ctx, j.chunk, buf)
	}
	cancelled := t.ctx.Err() != nil
	if !s.finish(t, err) {
		if err != nil && t.peer != nil && !cancelled {
			a.peerFailures.Add(1)
			a.log.Warn("peer fetch failed; asking elsewhere", slog.String("peer", t.peer.Addr),
				slog.String("chunk", j.chunk.SHA256.String()), slog.String("reason", err.Error()))
		}
		return nil
	}
	a.count(t)
	return a.put(j, b)
}

// count records where a stored chunk came from.
func (a *assembly) count(t *task) {
	j := t.j
	switch {
	case t.reason == taskLocal:
		a.reused.Add(j.chunk.Size)
		a.prog.Fetched(SourceReused, "", j.chunk.Size)
		a.log.Debug("chunk reused from the store", slog.Int("chunk", j.indexes[0]), slog.String("from", j.local.Path))
	case t.peer != nil:
		a.peer.Add(j.chunk.Size)
		a.peerChunks.Add(1)
		a.prog.Fetched(SourcePeer, "", j.chunk.Size)
		a.log.Debug("peer fetch", slog.Int("chunk", j.indexes[0]), slog.String("sha256", j.chunk.SHA256.String()),
			slog.Int64("bytes", j.chunk.Size), slog.String("peer", t.peer.Addr))
	default:
		a.origin.Add(j.chunk.Size)
		a.originChunks.Add(1)
		a.reasonMu.Lock()
		a.reasons[t.reason]++
		a.reasonMu.Unlock()
		a.prog.Fetched(SourceOrigin, t.reason, j.chunk.Size)
		a.log.Debug("origin fetch", slog.Int("chunk", j.indexes[0]), slog.String("sha256", j.chunk.SHA256.String()),
			slog.Int64("bytes", j.chunk.Size), slog.String("reason", t.reason))
	}
	a.dup.Add(j.chunk.Size * int64(len(j.indexes)-1))
}

// put writes a verified chunk at every offset it appears at, journals it,
// and makes it visible to the hasher and to peers.
func (a *assembly) put(j *job, b []byte) error {
	for _, i := range j.indexes {
		if _, err := a.f.WriteAt(b, a.offsets[i]); err != nil {
			return fmt.Errorf("store: write chunk %d: %w", i, err)
		}
	}
	if err := a.j.Add(j.indexes...); err != nil {
		return fmt.Errorf("store: journal: %w", err)
	}
	a.mu.Lock()
	for _, i := range j.indexes {
		a.have[i] = true
	}
	a.cond.Broadcast()
	a.mu.Unlock()
	a.prog.Placed(j.chunk.Size*int64(len(j.indexes)), len(j.indexes))
	if a.held != nil {
		a.held.Mark(a.key, j.indexes...)
	}
	return nil
}

// readLocal reads a chunk from where the store holds it and returns it only
// if it still matches its digest; nil means fetch it.
func (a *assembly) readLocal(j *job, buf []byte) []byte {
	if j.local == nil {
		return nil
	}
	f, err := os.Open(j.local.Path)
	if err != nil {
		return nil
	}
	defer f.Close()
	b := buf[:j.chunk.Size]
	if _, err := f.ReadAt(b, j.local.Offset); err != nil {
		return nil
	}
	if manifest.Sum(b) != j.chunk.SHA256 {
		a.prog.Rejected(SourceReused)
		a.log.Warn("stored chunk no longer matches its digest; fetching it", slog.String("chunk", j.chunk.SHA256.String()), slog.String("file", j.local.Path))
		return nil
	}
	return b
}

func (a *assembly) finish() {
	a.mu.Lock()
	a.done = true
	a.cond.Broadcast()
	a.mu.Unlock()
}

// wait blocks until chunk i is present; false if no more chunks will come.
func (a *assembly) wait(i int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for !a.have[i] && !a.done {
		a.cond.Wait()
	}
	return a.have[i]
}

// writebackStep is how much of the finished prefix gathers before its
// writeback is started.
const writebackStep = 8 << 20

// hashPrefix computes the whole-file SHA-256 in order, reading each chunk
// back as soon as it is present, and compares it with the manifest.
func (a *assembly) hashPrefix(ctx context.Context) error {
	h := manifest.NewHash()
	buf := make([]byte, 1<<20)
	var flushed int64 // writeback started for [0, flushed)
	for i, c := range a.m.Chunks {
		if !a.wait(i) {
			return context.Cause(ctx)
		}
		if end := a.offsets[i]; end-flushed >= writebackStep {
			startWriteback(a.f, flushed, end-flushed)
			flushed = end
		}
		for off, end := a.offsets[i], a.offsets[i]+c.Size; off < end; {
			n := min(int64(len(buf)), end-off)
			if _, err := a.f.ReadAt(buf[:n], off); err != nil {
				return fmt.Errorf("store: read back chunk %d: %w", i, err)
			}
			h.Write(buf[:n])
			off += n
		}
	}
	if got := manifest.Digest(h.Sum(nil)); got != a.m.Artifact.SHA256 {
		return fmt.Errorf("artifact %s: %w: %w: SHA-256 %s, manifest says %s",
			a.m.Artifact.Name, manifest.ErrMismatch, errWholeFile, got, a.m.Artifact.SHA256)
	}
	return nil
}

// recheck verifies every present chunk again, forgets the bad ones and
// rewrites the journal; it returns how many were bad.
func (a *assembly) recheck() (int, error) {
	buf := make([]byte, a.maxChunk())
	bad := 0
	var good []int
	for i, c := range a.m.Chunks {
		b := buf[:c.Size]
		if _, err := a.f.ReadAt(b, a.offsets[i]); err != nil || manifest.Sum(b) != c.SHA256 {
			a.have[i] = false
			if a.held != nil {
				a.held.Unmark(a.key, i)
			}
			bad++
			continue
		}
		a.have[i] = true
		good = append(good, i)
	}
	if bad == 0 {
		return 0, fmt.Errorf("artifact %s: %w: every chunk matches but the whole file does not: the manifest is inconsistent; not installed",
			a.m.Artifact.Name, manifest.ErrMismatch)
	}
	if err := a.j.Reset(); err != nil {
		return bad, err
	}
	return bad, a.j.Add(good...)
}

// commit makes the checked artifact durable and final: fsync, rename to
// artifact, fsync the directory, drop the journal.
func (a *assembly) commit() error {
	if err := a.f.Sync(); err != nil {
		return fmt.Errorf("store: fsync %s: %w", a.f.Name(), err)
	}
	final := filepath.Join(a.dir, store.ArtifactFile)
	if err := os.Rename(a.f.Name(), final); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := atomicfile.SyncDir(a.dir); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	os.Remove(filepath.Join(a.dir, store.HaveFile))
	return nil
}
