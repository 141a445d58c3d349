package swarm

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/agent/store"
	"github.com/fleetcast/fleetcast/internal/releasetest"
	"github.com/fleetcast/fleetcast/manifest"
)

// newTestStore is an empty store, opened as the agent opens its own.
func newTestStore(t testing.TB) *store.Store {
	return store.Open(filepath.Join(t.TempDir(), store.ReleasesDir))
}

func assembleRelease(t testing.TB, s *store.Store, m *manifest.Manifest, src Source) (peerproto.Transfer, error) {
	t.Helper()
	dir := s.ReleaseDir(m.ID())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	releasetest.WriteManifest(t, dir, m)
	return Assemble(context.Background(), s, m, dir, src, 3, nil, nil, slog.New(slog.DiscardHandler))
}

func checkArtifact(t *testing.T, s *store.Store, m *manifest.Manifest, want []byte) {
	t.Helper()
	got, err := os.ReadFile(s.ArtifactPath(m.ID()))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("artifact: %d bytes, %v; want the release's %d bytes", len(got), err, len(want))
	}
}

func TestAssembleFromSource(t *testing.T) {
	s, src := newTestStore(t), releasetest.NewSource()
	data := releasetest.Data(1, 600<<10)
	m := releasetest.Release(t, 1, data, src)
	tr, err := assembleRelease(t, s, m, src)
	if err != nil {
		t.Fatal(err)
	}
	checkArtifact(t, s, m, data)
	if tr.Origin != int64(len(data)) || tr.ReusedLocal != 0 || tr.Resumed != 0 {
		t.Errorf("transfer %+v: want all %d bytes from the source", tr, len(data))
	}
	if _, err := os.Stat(filepath.Join(s.ReleaseDir(manifest.ChannelID{Product: "app", Channel: "stable"}.Release(1)), store.HaveFile)); !os.IsNotExist(err) {
		t.Errorf("journal left after commit: %v", err)
	}
}

func TestAssembleDeltaReusesInstalledRelease(t *testing.T) {
	s, src := newTestStore(t), releasetest.NewSource()
	old := releasetest.Data(2, 1<<20)
	m1 := releasetest.Release(t, 1, old, src)
	if _, err := assembleRelease(t, s, m1, src); err != nil {
		t.Fatal(err)
	}
	changed := bytes.Clone(old)
	copy(changed[500<<10:], releasetest.Data(3, 10<<10)) // 1% changed
	m2 := releasetest.Release(t, 2, changed, src)
	tr, err := assembleRelease(t, s, m2, src)
	if err != nil {
		t.Fatal(err)
	}
	checkArtifact(t, s, m2, changed)
	if tr.Origin > int64(len(changed))/10 {
		t.Errorf("delta fetched %d of %d bytes from the source, want under 10%%", tr.Origin, len(changed))
	}
	if tr.ReusedLocal+tr.Origin+tr.Duplicate != int64(len(changed)) {
		t.Errorf("transfer %+v does not add up to %d bytes", tr, len(changed))
	}
}

func TestAssembleResumesFromJournal(t *testing.T) {
	s, src := newTestStore(t), releasetest.NewSource()
	data := releasetest.Data(4, 1<<20)
	m := releasetest.Release(t, 1, data, src)
	// A first attempt that fails half-way: the source dies after some chunks.
	half := releasetest.NewSource()
	for i, c := range m.Chunks {
		if i < len(m.Chunks)/2 {
			half.Add(c.SHA256, src.Get(c.SHA256))
		}
	}
	if _, err := assembleRelease(t, s, m, half); err == nil {
		t.Fatal("assembly from half the chunks succeeded")
	}
	got := half.Total()
	tr, err := assembleRelease(t, s, m, src)
	if err != nil {
		t.Fatal(err)
	}
	checkArtifact(t, s, m, data)
	if tr.Resumed == 0 {
		t.Errorf("resumed %d bytes, want the chunks of the first attempt", tr.Resumed)
	}
	if n := src.Total(); n+got > len(m.Chunks)+3 {
		t.Errorf("fetched %d + %d chunks for %d: verified chunks fetched again", got, n, len(m.Chunks))
	}
}

func TestAssembleRefetchesDamagedBytes(t *testing.T) {
	s, src := newTestStore(t), releasetest.NewSource()
	data := releasetest.Data(5, 300<<10)
	m := releasetest.Release(t, 1, data, src)
	// Complete the journal for every chunk, then damage one byte behind its back.
	dir := s.ReleaseDir(manifest.ChannelID{Product: "app", Channel: "stable"}.Release(1))
	os.MkdirAll(dir, 0o755)
	releasetest.WriteManifest(t, dir, m)
	part := filepath.Join(dir, store.PartFile)
	os.WriteFile(part, data, 0o644)
	var all []int
	for i := range m.Chunks {
		all = append(all, i)
	}
	j, _ := store.OpenJournal(filepath.Join(dir, store.HaveFile))
	j.Add(all...)
	j.Close()
	f, _ := os.OpenFile(part, os.O_RDWR, 0)
	f.WriteAt([]byte{data[1000] ^ 0xff}, 1000)
	f.Close()

	tr, err := Assemble(context.Background(), s, m, dir, src, 2, nil, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	checkArtifact(t, s, m, data)
	if tr.Refetched != 1 || src.Total() != 1 {
		t.Errorf("refetched %d chunks (%d fetches), want exactly the damaged one", tr.Refetched, src.Total())
	}
}

func TestAssembleSourceErrorLeavesNoArtifact(t *testing.T) {
	s, src := newTestStore(t), releasetest.NewSource()
	m := releasetest.Release(t, 1, releasetest.Data(6, 200<<10), src)
	src.Fail = errors.New("origin down")
	if _, err := assembleRelease(t, s, m, src); err == nil || !errors.Is(err, src.Fail) {
		t.Fatalf("error = %v, want the source's", err)
	}
	if s.Complete(manifest.ChannelID{Product: "app", Channel: "stable"}.Release(1)) {
		t.Fatal("release marked complete after a failed assembly")
	}
}

func TestAssembleDuplicateChunks(t *testing.T) {
	s, src := newTestStore(t), releasetest.NewSource()
	block := releasetest.Data(7, 100<<10)
	data := bytes.Repeat(block, 8) // content-defined chunks repeat too
	m := releasetest.Release(t, 1, data, src)
	tr, err := assembleRelease(t, s, m, src)
	if err != nil {
		t.Fatal(err)
	}
	checkArtifact(t, s, m, data)
	if tr.Duplicate == 0 || tr.Origin >= int64(len(data))/2 {
		t.Errorf("transfer %+v: repeated chunks were fetched more than once", tr)
	}
}

func TestAssembleEmptyArtifact(t *testing.T) {
	s, src := newTestStore(t), releasetest.NewSource()
	m := releasetest.Release(t, 1, nil, src)
	if _, err := assembleRelease(t, s, m, src); err != nil {
		t.Fatal(err)
	}
	checkArtifact(t, s, m, nil)
}

// writePartial stores m in s as an interrupted assembly leaves it: every
// byte of data in artifact.part, and the chunks at the indexes in have in
// the journal.
func writePartial(t *testing.T, s *store.Store, m *manifest.Manifest, data []byte, have []int) {
	t.Helper()
	dir := s.ReleaseDir(m.ID())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	releasetest.WriteManifest(t, dir, m)
	if err := os.WriteFile(filepath.Join(dir, store.PartFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	j, err := store.OpenJournal(filepath.Join(dir, store.HaveFile))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if err := j.Add(have...); err != nil {
		t.Fatal(err)
	}
}

// TestAssembleCopiesFromPartialRelease: a release is assembled from the
// journaled chunks of another, partial one that the store's holdings found
// when it was opened; chunks not journaled there come from the origin,
// although their bytes are in its artifact.part.
func TestAssembleCopiesFromPartialRelease(t *testing.T) {
	dir, src := t.TempDir(), releasetest.NewSource()
	data := releasetest.Data(13, 600<<10)
	m1 := releasetest.Release(t, 1, data, src)
	m1.Channel = "beta" // another channel's release, left half done
	var even []int
	for i := 0; i < len(m1.Chunks); i += 2 {
		even = append(even, i)
	}
	writePartial(t, store.Open(filepath.Join(dir, store.ReleasesDir)), m1, data, even)

	s := store.Open(filepath.Join(dir, store.ReleasesDir))
	m2 := releasetest.Release(t, 2, data, src)
	tr, err := assembleRelease(t, s, m2, src)
	if err != nil {
		t.Fatal(err)
	}
	checkArtifact(t, s, m2, data)
	var reused int64
	for _, i := range even {
		reused += m1.Chunks[i].Size
	}
	if tr.ReusedLocal != reused || tr.Origin != int64(len(data))-reused || src.Total() != len(m1.Chunks)-len(even) {
		t.Errorf("transfer %+v, %d origin fetches: want the %d journaled bytes copied, the other %d chunks from the origin",
			tr, src.Total(), reused, len(m1.Chunks)-len(even))
	}
}

// TestAssembleRechecksCopies: a copy in the store is hashed again before it
// is used; one damaged since it was stored is fetched instead.
func TestAssembleRechecksCopies(t *testing.T) {
	s, src := newTestStore(t), releasetest.NewSource()
	data := releasetest.Data(14, 300<<10)
	m1 := releasetest.Release(t, 1, data, src)
	if _, err := assembleRelease(t, s, m1, src); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(s.ArtifactPath(m1.ID()), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{^data[10]}, 10) // in chunk 0
	f.Close()
	m2 := releasetest.Release(t, 2, data, src)
	m2.Channel = "beta"
	fetched := src.Total()
	tr, err := assembleRelease(t, s, m2, src)
	if err != nil {
		t.Fatal(err)
	}
	checkArtifact(t, s, m2, data)
	if c := m2.Chunks[0]; tr.Origin != c.Size || tr.ReusedLocal != int64(len(data))-c.Size || src.Total() != fetched+1 {
		t.Errorf("transfer %+v: want the damaged chunk 0 (%d bytes) from the origin, the rest copied", tr, c.Size)
	}
}

// countingMetrics is a Counter that keeps what it is told.
type countingMetrics struct {
	mu       sync.Mutex
	bytes    map[string]int64 // by source
	verified map[string]int64 // by source
	reasons  map[string]int64
}

func (c *countingMetrics) ChunkBytes(source string, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bytes[source] += n
}

func (c *countingMetrics) ChunkVerified(source string, size int64) {
	c.ChunkBytes(source, size)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.verified[source]++
}

func (c *countingMetrics) ChunkRejected(string) {}

func (c *countingMetrics) OriginChunk(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reasons[reason]++
}

// TestAssembleTally: one assembly with chunks resumed, copied from another
// release, repeated, and fetched from the origin; the Transfer it returns,
// the status snapshot and the metrics agree with what the manifests say
// each chunk's source must be.
func TestAssembleTally(t *testing.T) {
	s, src := newTestStore(t), releasetest.NewSource()
	shared, block := releasetest.Data(15, 400<<10), releasetest.Data(16, 100<<10)
	m1 := releasetest.Release(t, 1, shared, src)
	if _, err := assembleRelease(t, s, m1, src); err != nil {
		t.Fatal(err)
	}
	data := slices.Concat(shared, releasetest.Data(17, 300<<10), block, block, block)
	m2 := releasetest.Release(t, 2, data, src)

	// An earlier attempt left the chunks at two indexes whose digests are
	// not repeated and not in release 1.
	inM1 := map[manifest.Digest]bool{}
	for _, c := range m1.Chunks {
		inM1[c.SHA256] = true
	}
	count := map[manifest.Digest]int{}
	for _, c := range m2.Chunks {
		count[c.SHA256]++
	}
	var resumedIdx []int
	for i, c := range m2.Chunks {
		if !inM1[c.SHA256] && count[c.SHA256] == 1 && len(resumedIdx) < 2 {
			resumedIdx = append(resumedIdx, i)
		}
	}
	writePartial(t, s, m2, data, resumedIdx)

	var want peerproto.Transfer
	want.ArtifactBytes = int64(len(data))
	seen := map[manifest.Digest]bool{}
	var reusedChunks int64
	for i, c := range m2.Chunks {
		switch {
		case slices.Contains(resumedIdx, i):
			want.Resumed += c.Size
		case seen[c.SHA256]:
			want.Duplicate += c.Size
		case inM1[c.SHA256]:
			want.ReusedLocal += c.Size
			reusedChunks++
		default:
			want.Origin += c.Size
			want.OriginChunks++
		}
		seen[c.SHA256] = true
	}
	want.OriginReasons = map[string]int64{ReasonNoPeers: want.OriginChunks}
	if want.Resumed == 0 || want.Duplicate == 0 || want.ReusedLocal == 0 || want.Origin == 0 {
		t.Fatalf("the releases do not have chunks of every kind: %+v", want)
	}

	mx := &countingMetrics{bytes: map[string]int64{}, verified: map[string]int64{}, reasons: map[string]int64{}}
	p := NewProgress(m2, time.Unix(1e9, 0), mx)
	tr, err := Assemble(context.Background(), s, m2, s.ReleaseDir(m2.ID()), src, 3, nil, p, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	checkArtifact(t, s, m2, data)
	if !reflect.DeepEqual(tr, want) {
		t.Errorf("transfer\n %+v\nwant\n %+v", tr, want)
	}
	snap := p.Snapshot()
	if snap.DoneBytes != want.ArtifactBytes || snap.DoneChunks != len(m2.Chunks) || snap.OriginBytes != want.Origin ||
		snap.PeerBytes != 0 || snap.ReusedBytes != want.ReusedLocal+want.Resumed {
		t.Errorf("status %+v; want all done, %d from the origin, %d reused or resumed", *snap, want.Origin, want.ReusedLocal+want.Resumed)
	}
	wantBytes := map[string]int64{SourceOrigin: want.Origin, SourceReused: want.ReusedLocal + want.Resumed}
	wantVerified := map[string]int64{SourceOrigin: want.OriginChunks, SourceReused: reusedChunks}
	if !maps.Equal(mx.bytes, wantBytes) || !maps.Equal(mx.verified, wantVerified) || !maps.Equal(mx.reasons, want.OriginReasons) {
		t.Errorf("metrics: bytes %v, verified %v, origin reasons %v; want %v, %v, %v",
			mx.bytes, mx.verified, mx.reasons, wantBytes, wantVerified, want.OriginReasons)
	}
}
