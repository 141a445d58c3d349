package store

import (
	"cmp"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/manifest"
)

// heldRelease is what the store holds of one release: its manifest (as
// verified when it was stored) and which chunks are present and verified.
type heldRelease struct {
	key      manifest.ReleaseID
	dir      string
	m        *manifest.Manifest
	offsets  []int64
	have     []bool
	fetching []bool // chunks being fetched from the origin by this agent
	count    int    // chunks present
	complete bool   // artifact renamed into place: read chunks from artifactFile
}

// Holdings is the live, in-memory view of the chunk store that the peer API
// serves from and assemblies find local copies in: every release held and
// its present chunks, an index by digest, and a version that grows with
// every change so that peers can wait for news (docs/SPEC.md §8, "state").
// It is safe for concurrent use.
type Holdings struct {
	mu       sync.Mutex
	rels     map[manifest.ReleaseID]*heldRelease
	byDigest map[manifest.Digest][]chunkRef
	version  uint64
	changed  chan struct{} // closed and replaced at every change
}

// chunkRef is one place a chunk is held.
type chunkRef struct {
	rel *heldRelease
	idx int
}

func NewHoldings() *Holdings {
	// The version starts from the clock, so that it grows across restarts
	// and a follower's after= from before a restart is not held for nothing.
	return &Holdings{rels: make(map[manifest.ReleaseID]*heldRelease), byDigest: make(map[manifest.Digest][]chunkRef),
		version: uint64(time.Now().UnixNano()), changed: make(chan struct{})}
}

// Scan loads every release directory of the store at dir, as the agent
// starts. Damaged releases are skipped: they hold nothing usable.
func (h *Holdings) Scan(dir string) {
	dirs, _ := filepath.Glob(filepath.Join(dir, "*", "*", "*"))
	for _, d := range dirs {
		seq, err := strconv.ParseUint(filepath.Base(d), 10, 64)
		if err != nil {
			continue
		}
		m, err := LoadManifest(d)
		if err != nil {
			continue
		}
		key := manifest.ChannelID{Product: filepath.Base(filepath.Dir(filepath.Dir(d))), Channel: filepath.Base(filepath.Dir(d))}.Release(seq)
		if m.Product != key.Product || m.Channel != key.Channel || m.Sequence != seq {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, ArtifactFile)); err == nil {
			h.Add(key, d, m, nil, true)
			continue
		}
		have, err := ReadJournal(filepath.Join(d, HaveFile), len(m.Chunks))
		if err == nil {
			h.Add(key, d, m, VerifyJournaled(filepath.Join(d, PartFile), m, have), false)
		}
	}
}

// Add records a release with the chunks in have (all, if complete).
func (h *Holdings) Add(key manifest.ReleaseID, dir string, m *manifest.Manifest, have []bool, complete bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if old := h.rels[key]; old != nil {
		h.dropLocked(old)
	}
	r := &heldRelease{key: key, dir: dir, m: m, offsets: m.Offsets(),
		have: make([]bool, len(m.Chunks)), fetching: make([]bool, len(m.Chunks)), complete: complete}
	for i, c := range m.Chunks {
		if complete || (i < len(have) && have[i]) {
			r.have[i] = true
			r.count++
			h.byDigest[c.SHA256] = append(h.byDigest[c.SHA256], chunkRef{r, i})
		}
	}
	h.rels[key] = r
	h.bumpLocked()
}

// Mark records chunks of a release as present and verified.
func (h *Holdings) Mark(key manifest.ReleaseID, idx ...int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rels[key]
	if r == nil {
		return
	}
	changed := false
	for _, i := range idx {
		if i < 0 || i >= len(r.have) || r.have[i] {
			continue
		}
		r.have[i] = true
		r.count++
		d := r.m.Chunks[i].SHA256
		h.byDigest[d] = append(h.byDigest[d], chunkRef{r, i})
		changed = true
	}
	if changed {
		h.bumpLocked()
	}
}

// Fetching records that this agent started (on) or ended a request to the
// origin for the chunk at idx, so that peers do not ask the origin for it too.
func (h *Holdings) Fetching(key manifest.ReleaseID, idx int, on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.rels[key]; r != nil && idx >= 0 && idx < len(r.fetching) && r.fetching[idx] != on {
		r.fetching[idx] = on
		h.bumpLocked()
	}
}

// Unmark forgets chunks that failed a re-check.
func (h *Holdings) Unmark(key manifest.ReleaseID, idx ...int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rels[key]
	if r == nil {
		return
	}
	changed := false
	for _, i := range idx {
		if i < 0 || i >= len(r.have) || !r.have[i] {
			continue
		}
		r.have[i] = false
		r.count--
		d := r.m.Chunks[i].SHA256
		h.byDigest[d] = slices.DeleteFunc(h.byDigest[d], func(c chunkRef) bool { return c.rel == r && c.idx == i })
		if len(h.byDigest[d]) == 0 {
			delete(h.byDigest, d)
		}
		changed = true
	}
	if changed {
		h.bumpLocked()
	}
}

// Completed records that a release's artifact is in place.
func (h *Holdings) Completed(key manifest.ReleaseID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.rels[key]; r != nil {
		r.complete = true
		h.bumpLocked()
	}
}

// Drop forgets a release, before its directory is removed.
func (h *Holdings) Drop(key manifest.ReleaseID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.rels[key]; r != nil {
		h.dropLocked(r)
		h.bumpLocked()
	}
}

func (h *Holdings) dropLocked(r *heldRelease) {
	delete(h.rels, r.key)
	for i, c := range r.m.Chunks {
		if !r.have[i] {
			continue
		}
		refs := slices.DeleteFunc(h.byDigest[c.SHA256], func(c chunkRef) bool { return c.rel == r })
		if len(refs) == 0 {
			delete(h.byDigest, c.SHA256)
		} else {
			h.byDigest[c.SHA256] = refs
		}
	}
}

func (h *Holdings) bumpLocked() {
	h.version++
	close(h.changed)
	h.changed = make(chan struct{})
}

// Lookup returns where the store holds the chunk with digest d.
func (h *Holdings) Lookup(d manifest.Digest) (Location, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	refs := h.byDigest[d]
	if len(refs) == 0 {
		return Location{}, false
	}
	ref := refs[0]
	name := PartFile
	if ref.rel.complete {
		name = ArtifactFile
	}
	return Location{Path: filepath.Join(ref.rel.dir, name), Offset: ref.rel.offsets[ref.idx],
		Size: ref.rel.m.Chunks[ref.idx].Size}, true
}

// Wait returns when the version is greater than after, or ctx is done; it
// returns the version then.
func (h *Holdings) Wait(ctx context.Context, after uint64) uint64 {
	for {
		h.mu.Lock()
		v, ch := h.version, h.changed
		h.mu.Unlock()
		if v > after {
			return v
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return v
		}
	}
}

// Snapshot returns the version and the state of every release held, in a
// stable order, as the peer API sends it.
func (h *Holdings) Snapshot() (uint64, []peerproto.ReleaseHave) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]peerproto.ReleaseHave, 0, len(h.rels))
	for _, r := range h.rels {
		if len(r.have) == 0 {
			continue // an empty artifact: nothing to share
		}
		out = append(out, peerproto.ReleaseHave{ReleaseID: r.key,
			Chunks: len(r.have), Have: peerproto.EncodeBitmap(r.have), Fetching: peerproto.EncodeBitmap(r.fetching)})
	}
	slices.SortFunc(out, func(a, b peerproto.ReleaseHave) int {
		return cmp.Or(strings.Compare(a.Product, b.Product), strings.Compare(a.Channel, b.Channel), cmp.Compare(a.Sequence, b.Sequence))
	})
	return h.version, out
}

// Has reports whether the release is held (its manifest, at least).
func (h *Holdings) Has(key manifest.ReleaseID) (dir string, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.rels[key]; r != nil {
		return r.dir, true
	}
	return "", false
}

// VerifyJournaled keeps the journaled chunks of a partial release whose
// bytes still match: after a power loss the journal may name chunks whose
// bytes never reached the disk, and peers must not be offered those.
func VerifyJournaled(path string, m *manifest.Manifest, have []bool) []bool {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var buf []byte
	offs := m.Offsets()
	for i, c := range m.Chunks {
		if have[i] {
			buf = slices.Grow(buf[:0], int(c.Size))[:c.Size]
			if _, err := f.ReadAt(buf, offs[i]); err != nil || manifest.Sum(buf) != c.SHA256 {
				have[i] = false
			}
		}
	}
	return have
}
