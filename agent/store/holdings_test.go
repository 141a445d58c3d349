package store

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/manifest"
)

// handManifest is a manifest of chunks of the given digests and sizes; the
// holdings do not validate manifests, so nothing else is needed.
func handManifest(product string, seq uint64, chunks ...manifest.Chunk) *manifest.Manifest {
	return &manifest.Manifest{Product: product, Channel: "stable", Sequence: seq, Chunks: chunks}
}

// checkHoldings checks the holdings' invariants: the digest index lists
// exactly the held chunks of every release, counts match the bitmaps, and
// the snapshot reports the bitmaps.
func checkHoldings(t *testing.T, h *Holdings) {
	t.Helper()
	_, snap := h.Snapshot()
	h.mu.Lock()
	defer h.mu.Unlock()
	want := map[manifest.Digest][]chunkRef{}
	for _, r := range h.rels {
		n := 0
		for i, have := range r.have {
			if have {
				n++
				d := r.m.Chunks[i].SHA256
				want[d] = append(want[d], chunkRef{r, i})
			}
		}
		if n != r.count {
			t.Errorf("release %s: count %d, %d bits set", r.key, r.count, n)
		}
	}
	if len(want) != len(h.byDigest) {
		t.Errorf("index has %d digests, releases hold %d", len(h.byDigest), len(want))
	}
	for d, refs := range want {
		got := h.byDigest[d]
		if len(got) != len(refs) {
			t.Errorf("digest %s: index has %d places, releases hold it at %d", d, len(got), len(refs))
			continue
		}
		for _, ref := range refs {
			if !slices.Contains(got, ref) {
				t.Errorf("digest %s: index misses %s chunk %d", d, ref.rel.key, ref.idx)
			}
		}
	}
	if len(snap) != len(h.rels) {
		t.Fatalf("snapshot has %d releases, holdings %d", len(snap), len(h.rels))
	}
	for _, s := range snap {
		r := h.rels[s.ReleaseID]
		if r == nil {
			t.Errorf("snapshot lists %s/%s/%d, not held", s.Product, s.Channel, s.Sequence)
			continue
		}
		if s.Chunks != len(r.have) || s.Have != peerproto.EncodeBitmap(r.have) || s.Fetching != peerproto.EncodeBitmap(r.fetching) {
			t.Errorf("snapshot of %s: %+v, holdings have %v fetching %v", r.key, s, r.have, r.fetching)
		}
	}
}

// wantLookup checks that lookup finds d at one of want, or nowhere when
// want is empty.
func wantLookup(t *testing.T, h *Holdings, d manifest.Digest, want ...Location) {
	t.Helper()
	got, ok := h.Lookup(d)
	if len(want) == 0 {
		if ok {
			t.Errorf("lookup %s: found at %+v, want not held", d, got)
		}
		return
	}
	if !ok || !slices.Contains(want, got) {
		t.Errorf("lookup %s: %+v, %v; want one of %+v", d, got, ok, want)
	}
}

func TestHoldingsIndex(t *testing.T) {
	a, b, c, d := manifest.Sum([]byte("a")), manifest.Sum([]byte("b")), manifest.Sum([]byte("c")), manifest.Sum([]byte("d"))
	// Digest a is at indexes 0 and 2 of r1 and at index 1 of r2.
	m1 := handManifest("app", 1, manifest.Chunk{SHA256: a, Size: 10}, manifest.Chunk{SHA256: b, Size: 20},
		manifest.Chunk{SHA256: a, Size: 10}, manifest.Chunk{SHA256: c, Size: 5})
	m2 := handManifest("app", 2, manifest.Chunk{SHA256: d, Size: 7}, manifest.Chunk{SHA256: a, Size: 10})
	k1, k2 := manifest.ChannelID{Product: "app", Channel: "stable"}.Release(1), manifest.ChannelID{Product: "app", Channel: "stable"}.Release(2)
	dir1, dir2 := "/store/app/stable/1", "/store/app/stable/2"
	part1 := func(off int64, size int64) Location {
		return Location{Path: filepath.Join(dir1, PartFile), Offset: off, Size: size}
	}
	r2a := Location{Path: filepath.Join(dir2, ArtifactFile), Offset: 7, Size: 10}

	h := NewHoldings()
	v := h.version
	step := func(name string, f func()) {
		t.Helper()
		f()
		if h.version <= v {
			t.Errorf("%s: version %d did not grow from %d", name, h.version, v)
		}
		v = h.version
		checkHoldings(t, h)
	}
	step("add r1", func() { h.Add(k1, dir1, m1, []bool{true, true}, false) })
	wantLookup(t, h, a, part1(0, 10))
	wantLookup(t, h, b, part1(10, 20))
	wantLookup(t, h, c)
	wantLookup(t, h, d)

	step("add r2 complete", func() { h.Add(k2, dir2, m2, nil, true) })
	wantLookup(t, h, a, part1(0, 10), r2a)
	wantLookup(t, h, d, Location{Path: filepath.Join(dir2, ArtifactFile), Offset: 0, Size: 7})

	step("mark r1 2 3", func() { h.Mark(k1, 2, 3, 3, -1, 4) })
	wantLookup(t, h, c, part1(40, 5))
	if h.rels[k1].count != 4 {
		t.Errorf("r1 count %d after marking every chunk, want 4", h.rels[k1].count)
	}

	step("fetching r1 1", func() { h.Fetching(k1, 1, true) })
	if _, snap := h.Snapshot(); snap[0].Fetching != peerproto.EncodeBitmap([]bool{false, true, false, false}) {
		t.Errorf("snapshot fetching %s, want chunk 1", snap[0].Fetching)
	}
	step("fetching r1 1 done", func() { h.Fetching(k1, 1, false) })

	step("unmark r1 0", func() { h.Unmark(k1, 0, 0) })
	wantLookup(t, h, a, part1(30, 10), r2a)
	step("drop r2", func() { h.Drop(k2) })
	wantLookup(t, h, a, part1(30, 10))
	wantLookup(t, h, d)
	step("unmark r1 2", func() { h.Unmark(k1, 2) })
	wantLookup(t, h, a)
	wantLookup(t, h, b, part1(10, 20))

	step("completed r1", func() { h.Completed(k1) })
	wantLookup(t, h, b, Location{Path: filepath.Join(dir1, ArtifactFile), Offset: 10, Size: 20})

	step("add r1 again, nothing held", func() { h.Add(k1, dir1, m1, nil, false) })
	wantLookup(t, h, b)
	if len(h.byDigest) != 0 {
		t.Errorf("index keeps %d digests of a replaced release", len(h.byDigest))
	}

	// Changes to a release not held change nothing.
	h.Drop(k2)
	h.Completed(k2)
	h.Fetching(k2, 0, true)
	checkHoldings(t, h)
	if _, ok := h.Has(k2); ok {
		t.Error("dropped release still held")
	}
}

func TestHoldingsSnapshotOrder(t *testing.T) {
	h := NewHoldings()
	one := manifest.Chunk{SHA256: manifest.Sum([]byte("x")), Size: 1}
	for _, k := range []manifest.ReleaseID{manifest.ChannelID{Product: "b", Channel: "stable"}.Release(2), manifest.ChannelID{Product: "a", Channel: "stable"}.Release(10), manifest.ChannelID{Product: "a", Channel: "beta"}.Release(1), manifest.ChannelID{Product: "a", Channel: "stable"}.Release(9)} {
		h.Add(k, "/d", handManifest(k.Product, k.Sequence, one), nil, true)
	}
	v, snap := h.Snapshot()
	if v != h.version {
		t.Errorf("snapshot version %d, holdings %d", v, h.version)
	}
	var got []string
	for _, r := range snap {
		got = append(got, r.ReleaseID.String())
	}
	if want := []string{"a/beta/1", "a/stable/9", "a/stable/10", "b/stable/2"}; !slices.Equal(got, want) {
		t.Errorf("snapshot order %v, want %v", got, want)
	}
}

// startWait runs h.wait in a goroutine and returns the channel of its result.
func startWait(ctx context.Context, h *Holdings, after uint64) <-chan uint64 {
	ch := make(chan uint64, 1)
	go func() { ch <- h.Wait(ctx, after) }()
	return ch
}

// receive returns the value from ch, failing the test if none comes in time
// (a bound on failure, not a wait for an event).
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no result after 10s", what)
	}
	var zero T
	return zero
}

func TestHoldingsWait(t *testing.T) {
	k := manifest.ChannelID{Product: "app", Channel: "stable"}.Release(1)
	m := handManifest("app", 1, manifest.Chunk{SHA256: manifest.Sum([]byte("x")), Size: 1})
	t.Run("newer already", func(t *testing.T) {
		h := NewHoldings()
		h.Add(k, "/d", m, nil, false)
		v := h.version
		if got := receive(t, startWait(t.Context(), h, v-1), "wait"); got != v {
			t.Errorf("wait returned %d, want %d", got, v)
		}
		if got := receive(t, startWait(t.Context(), h, 0), "wait"); got != v {
			t.Errorf("wait returned %d, want %d", got, v)
		}
	})
	t.Run("until mark", func(t *testing.T) {
		h := NewHoldings()
		h.Add(k, "/d", m, nil, false)
		v := h.version
		ch := startWait(t.Context(), h, v)
		select {
		case got := <-ch:
			t.Fatalf("wait returned %d before any change", got)
		default:
		}
		h.Mark(k, 0)
		if got := receive(t, ch, "wait after mark"); got <= v || got != h.version {
			t.Errorf("wait returned %d, want the version after the mark %d", got, h.version)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		h := NewHoldings()
		v := h.version
		ctx, cancel := context.WithCancel(t.Context())
		ch := startWait(ctx, h, v)
		cancel()
		if got := receive(t, ch, "wait after cancel"); got != v {
			t.Errorf("cancelled wait returned %d, want the unchanged %d", got, v)
		}
	})
	t.Run("many waiters", func(t *testing.T) {
		h := NewHoldings()
		h.Add(k, "/d", m, nil, false)
		v := h.version
		var chs []<-chan uint64
		for range 8 {
			chs = append(chs, startWait(t.Context(), h, v))
		}
		h.Fetching(k, 0, true)
		for _, ch := range chs {
			if got := receive(t, ch, "waiter"); got <= v {
				t.Errorf("waiter returned %d, want > %d", got, v)
			}
		}
	})
}
