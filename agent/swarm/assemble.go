// Package swarm assembles a release's artifact in the store from its
// sources: chunks the store already holds (resume, delta), peers, and the
// origin. Its scheduler picks the rarest chunk first from the least busy
// peer, sends a chunk to the origin about once per fleet (rendezvous
// ranks), and ends with a second request for a stuck chunk (docs/SPEC.md
// §8). The agent gives it a View of the peers (its peer manager, or an
// in-memory fleet in tests) and a Counter for its metrics. Progress is an
// assembly's one tally: what the status API shows while it runs, the
// Transfer it returns, and what it passes on to the Counter.
package swarm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

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
	key     manifest.ReleaseID
	dir     string
	f       *os.File
	j       *store.Journal
	offsets []int64
	src     Source
	conns   int
	swarm   *Config         // nil: no peers
	held    *store.Holdings // the store's index: copies to reuse, and where peers see this release
	prog    *Progress       // the tally: status, Transfer and metrics
	log     *slog.Logger

	// have is this assembly's record of its chunks in place. The journal
	// (the durable record) and the holdings (the index that peers and other
	// assemblies read) say the same; markPresent and markAbsent change all
	// three together, and nothing else changes them once the assembly is
	// open. have is kept, rather than asking the holdings, for the prefix
	// hasher: it waits on cond for each chunk in artifact order, woken by
	// this assembly's chunks and by its end (done) alone. The holdings have
	// one change signal for every release and every fetching flag, behind
	// the lock the peer server holds to encode its bitmaps, and a release
	// there can be replaced (Add) or dropped (Store.Remove) while it is
	// assembled: waiting there would wake the hasher for others' news at
	// each chunk, and tie the assembly's end to an index it does not own.
	mu   sync.Mutex
	cond *sync.Cond
	have []bool
	done bool // no more chunks will arrive (finished or failed)
}

// Assemble makes releases/.../<seq>/artifact for m, which must already be
// verified, and returns what it transferred, as tallied in p as each chunk
// arrived. sw may be nil (no peers), p nil (a Progress of its own, not
// reported); p must be new, for this assembly alone.
func Assemble(ctx context.Context, s *store.Store, m *manifest.Manifest, dir string, src Source, conns int, sw *Config, p *Progress, log *slog.Logger) (peerproto.Transfer, error) {
	if p == nil {
		p = NewProgress(m, time.Now(), nil)
	}
	a, err := openAssembly(s, m, dir, src, conns, log)
	if err != nil {
		return p.transfer(), err
	}
	defer a.close()
	a.swarm, a.prog = sw, p
	resumed, chunks := a.present()
	p.Resumed(resumed, chunks)
	if resumed > 0 {
		log.Info("resuming release from the store", slog.Int64("verified_bytes", resumed))
	}
	for round := 0; ; round++ {
		err = a.fill(ctx)
		if err == nil || !errors.Is(err, errWholeFile) || round > 0 {
			break
		}
		// The whole file did not match although every chunk did when it was
		// stored: bytes were lost since (power loss, a damaged disk). Check
		// every chunk again and fetch the bad ones.
		log.Warn("whole-file check failed; re-checking every chunk", slog.String("reason", err.Error()))
		bad, rerr := a.recheck()
		if rerr != nil {
			return p.transfer(), rerr
		}
		bytes, chunks := a.present()
		p.Rechecked(bad, bytes, chunks)
	}
	tr := p.transfer()
	if err != nil {
		return tr, err
	}
	if err := a.commit(); err != nil {
		return tr, err
	}
	a.held.Completed(a.key)
	return tr, nil
}

func openAssembly(s *store.Store, m *manifest.Manifest, dir string, src Source, conns int, log *slog.Logger) (*assembly, error) {
	a := &assembly{m: m, key: m.ID(), dir: dir, src: src,
		conns: max(conns, 1), held: s.Held, log: log}
	a.cond = sync.NewCond(&a.mu)
	a.offsets = m.Offsets()
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
	a.held.Add(a.key, dir, m, a.have, false)
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

// plan lists the missing chunks in artifact order, one job per digest,
// each with where the store holds a copy, if it does: in another release,
// complete or partial, or at another offset of this one (the holdings list
// this release's chunks too).
func (a *assembly) plan() []*job {
	return planJobs(a.m.Chunks, a.have, func(c manifest.Chunk) *store.Location {
		if loc, ok := a.held.Lookup(c.SHA256); ok && loc.Size == c.Size {
			return &loc
		}
		return nil
	})
}

// planJobs lists the chunks not in have (nil: none is) in order, one job per
// digest, each with the copy local names (nil: no copy).
func planJobs(chunks []manifest.Chunk, have []bool, local func(manifest.Chunk) *store.Location) []*job {
	byDigest := make(map[manifest.Digest]*job)
	var jobs []*job
	for i, c := range chunks {
		if have != nil && have[i] {
			continue
		}
		if j := byDigest[c.SHA256]; j != nil {
			j.indexes = append(j.indexes, i)
			continue
		}
		j := &job{chunk: c, indexes: []int{i}, local: local(c)}
		byDigest[c.SHA256] = j
		jobs = append(jobs, j)
	}
	return jobs
}

// fill fetches every missing chunk, from the store, peers and the origin as
// the scheduler decides, while the prefix hasher runs, and returns the
// first error or the whole-file verdict.
func (a *assembly) fill(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	a.mu.Lock()
	a.done = false
	a.mu.Unlock()
	hashed := make(chan error, 1)
	go func() { hashed <- a.hashPrefix(ctx) }()

	s := newSched(len(a.m.Chunks), a.plan(), a.swarm, a.key)
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
		a.held.Fetching(a.key, j.indexes[0], true)
		defer a.held.Fetching(a.key, j.indexes[0], false)
		b, err = a.src.Chunk(t.ctx, j.chunk, buf)
	}
	cancelled := t.ctx.Err() != nil
	if !s.finish(t, err) {
		if err != nil && t.peer != nil && !cancelled {
			a.prog.peerFailed()
			a.log.Warn("peer fetch failed; asking elsewhere", slog.String("peer", t.peer.Addr),
				slog.String("chunk", j.chunk.SHA256.String()), slog.String("reason", err.Error()))
		}
		return nil
	}
	if err := a.put(j, b); err != nil {
		return err
	}
	a.count(t)
	return nil
}

// count tallies a stored chunk by where it came from.
func (a *assembly) count(t *task) {
	j := t.j
	source, reason := SourceOrigin, t.reason
	switch {
	case t.reason == taskLocal:
		source, reason = SourceReused, ""
		a.log.Debug("chunk reused from the store", slog.Int("chunk", j.indexes[0]), slog.String("from", j.local.Path))
	case t.peer != nil:
		source, reason = SourcePeer, ""
		a.log.Debug("peer fetch", slog.Int("chunk", j.indexes[0]), slog.String("sha256", j.chunk.SHA256.String()),
			slog.Int64("bytes", j.chunk.Size), slog.String("peer", t.peer.Addr))
	default:
		a.log.Debug("origin fetch", slog.Int("chunk", j.indexes[0]), slog.String("sha256", j.chunk.SHA256.String()),
			slog.Int64("bytes", j.chunk.Size), slog.String("reason", t.reason))
	}
	a.prog.Stored(source, reason, j.chunk.Size, len(j.indexes))
}

// put writes a verified chunk at every offset it appears at and marks it
// present.
func (a *assembly) put(j *job, b []byte) error {
	for _, i := range j.indexes {
		if _, err := a.f.WriteAt(b, a.offsets[i]); err != nil {
			return fmt.Errorf("store: write chunk %d: %w", i, err)
		}
	}
	return a.markPresent(j.indexes)
}

// markPresent records chunks whose verified bytes are written: in the
// journal first, so that after a crash every entry names written bytes,
// then in have, for the hasher, and in the holdings, for peers and other
// assemblies. It is the one place a chunk becomes present.
func (a *assembly) markPresent(idx []int) error {
	if err := a.j.Add(idx...); err != nil {
		return fmt.Errorf("store: journal: %w", err)
	}
	a.mu.Lock()
	for _, i := range idx {
		a.have[i] = true
	}
	a.cond.Broadcast()
	a.mu.Unlock()
	a.held.Mark(a.key, idx...)
	return nil
}

// markAbsent is markPresent's reverse, for chunks that failed a re-check:
// the holdings and have forget them, and the journal is written again with
// the chunks still present.
func (a *assembly) markAbsent(idx []int) error {
	a.held.Unmark(a.key, idx...)
	a.mu.Lock()
	for _, i := range idx {
		a.have[i] = false
	}
	var present []int
	for i, h := range a.have {
		if h {
			present = append(present, i)
		}
	}
	a.mu.Unlock()
	if err := a.j.Reset(); err != nil {
		return err
	}
	return a.j.Add(present...)
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

// recheck verifies every chunk again (the whole-file check runs only once
// every chunk is present) and marks the bad ones absent; it returns how
// many were bad.
func (a *assembly) recheck() (int, error) {
	buf := make([]byte, a.maxChunk())
	var bad []int
	for i, c := range a.m.Chunks {
		b := buf[:c.Size]
		if _, err := a.f.ReadAt(b, a.offsets[i]); err != nil || manifest.Sum(b) != c.SHA256 {
			bad = append(bad, i)
		}
	}
	if len(bad) == 0 {
		return 0, fmt.Errorf("artifact %s: %w: every chunk matches but the whole file does not: the manifest is inconsistent; not installed",
			a.m.Artifact.Name, manifest.ErrMismatch)
	}
	return len(bad), a.markAbsent(bad)
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
