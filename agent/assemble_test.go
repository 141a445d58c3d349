package agent

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/agent/store"
	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/publisher"
	"github.com/fleetcast/fleetcast/signing"
)

// memSource serves chunks from memory and counts what it served.
type memSource struct {
	mu      sync.Mutex
	chunks  map[manifest.Digest][]byte
	fetched map[manifest.Digest]int
	fail    error // when set, every fetch fails with it
	corrupt bool  // when set, returned chunks fail their digest (as the origin client reports)
}

func newMemSource() *memSource {
	return &memSource{chunks: map[manifest.Digest][]byte{}, fetched: map[manifest.Digest]int{}}
}

func (s *memSource) Chunk(ctx context.Context, c manifest.Chunk, buf []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	b, ok := s.chunks[c.SHA256]
	if !ok {
		return nil, os.ErrNotExist
	}
	s.fetched[c.SHA256]++
	return append(buf[:0], b...), nil
}

func (s *memSource) total() (n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.fetched {
		n += v
	}
	return n
}

// testRelease chunks data with small chunks and returns its manifest; the
// chunks are added to src.
func testRelease(t *testing.T, seq uint64, data []byte, src *memSource) *manifest.Manifest {
	t.Helper()
	ch := manifest.Chunking{Algorithm: manifest.ChunkingFastCDC, Min: 4 << 10, Avg: 16 << 10, Max: 64 << 10}
	m := &manifest.Manifest{Product: "app", Channel: "stable", Sequence: seq, Version: "1.0",
		Created: time.Unix(1e9, 0), Expires: time.Unix(2e9, 0), Chunking: ch,
		Artifact: manifest.Artifact{Name: "app", Size: int64(len(data)), SHA256: manifest.Sum(data)},
		Install:  manifest.Install{Installer: "file", Target: "/opt/app/app"}}
	res, err := publisher.Split(context.Background(), bytes.NewReader(data), ch, 2, func(c publisher.SplitChunk) error {
		src.mu.Lock()
		src.chunks[c.SHA256] = bytes.Clone(c.Data)
		src.mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	m.Chunks = res.Chunks
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	return m
}

func randomData(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed)})
	r.Read(b)
	return b
}

func newTestStore(t *testing.T) *store.Store {
	return &store.Store{Dir: filepath.Join(t.TempDir(), store.ReleasesDir)}
}

func assembleRelease(t *testing.T, s *store.Store, m *manifest.Manifest, src chunkSource) (peerproto.Transfer, error) {
	t.Helper()
	dir := s.ReleaseDir(m.Product, m.Channel, m.Sequence)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTestManifest(t, dir, m)
	return assemble(context.Background(), s, m, dir, src, 3, nil, nil, slog.New(slog.DiscardHandler))
}

// writeTestManifest stores m as an unsigned envelope: the store's index
// does not check signatures (every reused chunk is hashed again).
func writeTestManifest(t *testing.T, dir string, m *manifest.Manifest) {
	t.Helper()
	p, err := manifest.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	env := signingEnvelope(p)
	if err := os.WriteFile(filepath.Join(dir, store.ManifestFile), env, 0o644); err != nil {
		t.Fatal(err)
	}
}

func checkArtifact(t *testing.T, s *store.Store, m *manifest.Manifest, want []byte) {
	t.Helper()
	got, err := os.ReadFile(s.ArtifactPath(m.Product, m.Channel, m.Sequence))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("artifact: %d bytes, %v; want the release's %d bytes", len(got), err, len(want))
	}
}

func TestAssembleFromSource(t *testing.T) {
	s, src := newTestStore(t), newMemSource()
	data := randomData(1, 600<<10)
	m := testRelease(t, 1, data, src)
	tr, err := assembleRelease(t, s, m, src)
	if err != nil {
		t.Fatal(err)
	}
	checkArtifact(t, s, m, data)
	if tr.Origin != int64(len(data)) || tr.ReusedLocal != 0 || tr.Resumed != 0 {
		t.Errorf("transfer %+v: want all %d bytes from the source", tr, len(data))
	}
	if _, err := os.Stat(filepath.Join(s.ReleaseDir("app", "stable", 1), store.HaveFile)); !os.IsNotExist(err) {
		t.Errorf("journal left after commit: %v", err)
	}
}

func TestAssembleDeltaReusesInstalledRelease(t *testing.T) {
	s, src := newTestStore(t), newMemSource()
	old := randomData(2, 1<<20)
	m1 := testRelease(t, 1, old, src)
	if _, err := assembleRelease(t, s, m1, src); err != nil {
		t.Fatal(err)
	}
	changed := bytes.Clone(old)
	copy(changed[500<<10:], randomData(3, 10<<10)) // 1% changed
	m2 := testRelease(t, 2, changed, src)
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
	s, src := newTestStore(t), newMemSource()
	data := randomData(4, 1<<20)
	m := testRelease(t, 1, data, src)
	// A first attempt that fails half-way: the source dies after some chunks.
	half := newMemSource()
	for i, c := range m.Chunks {
		if i < len(m.Chunks)/2 {
			half.chunks[c.SHA256] = src.chunks[c.SHA256]
		}
	}
	if _, err := assembleRelease(t, s, m, half); err == nil {
		t.Fatal("assembly from half the chunks succeeded")
	}
	got := half.total()
	tr, err := assembleRelease(t, s, m, src)
	if err != nil {
		t.Fatal(err)
	}
	checkArtifact(t, s, m, data)
	if tr.Resumed == 0 {
		t.Errorf("resumed %d bytes, want the chunks of the first attempt", tr.Resumed)
	}
	if n := src.total(); n+got > len(m.Chunks)+3 {
		t.Errorf("fetched %d + %d chunks for %d: verified chunks fetched again", got, n, len(m.Chunks))
	}
}

func TestAssembleRefetchesDamagedBytes(t *testing.T) {
	s, src := newTestStore(t), newMemSource()
	data := randomData(5, 300<<10)
	m := testRelease(t, 1, data, src)
	// Complete the journal for every chunk, then damage one byte behind its back.
	dir := s.ReleaseDir("app", "stable", 1)
	os.MkdirAll(dir, 0o755)
	writeTestManifest(t, dir, m)
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

	tr, err := assemble(context.Background(), s, m, dir, src, 2, nil, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	checkArtifact(t, s, m, data)
	if tr.Refetched != 1 || src.total() != 1 {
		t.Errorf("refetched %d chunks (%d fetches), want exactly the damaged one", tr.Refetched, src.total())
	}
}

func TestAssembleSourceErrorLeavesNoArtifact(t *testing.T) {
	s, src := newTestStore(t), newMemSource()
	m := testRelease(t, 1, randomData(6, 200<<10), src)
	src.fail = errors.New("origin down")
	if _, err := assembleRelease(t, s, m, src); err == nil || !errors.Is(err, src.fail) {
		t.Fatalf("error = %v, want the source's", err)
	}
	if s.Complete("app", "stable", 1) {
		t.Fatal("release marked complete after a failed assembly")
	}
}

func TestAssembleDuplicateChunks(t *testing.T) {
	s, src := newTestStore(t), newMemSource()
	block := randomData(7, 100<<10)
	data := bytes.Repeat(block, 8) // content-defined chunks repeat too
	m := testRelease(t, 1, data, src)
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
	s, src := newTestStore(t), newMemSource()
	m := testRelease(t, 1, nil, src)
	if _, err := assembleRelease(t, s, m, src); err != nil {
		t.Fatal(err)
	}
	checkArtifact(t, s, m, nil)
}

func signingEnvelope(payload []byte) []byte {
	return signing.NewEnvelope(manifest.PayloadType, payload).Marshal()
}
