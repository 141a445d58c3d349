// Package releasetest makes releases for the agent's tests: random data,
// its manifest chunked small, an in-memory chunk source, and a manifest
// stored as the agent stores it. Test code only.
package releasetest

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/publisher"
	"github.com/fleetcast/fleetcast/signing"
)

// Data is n pseudo-random bytes, the same for the same seed.
func Data(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed)})
	r.Read(b)
	return b
}

// Source serves chunks from memory and counts what it served. Its methods
// are safe for concurrent use.
type Source struct {
	mu      sync.Mutex
	chunks  map[manifest.Digest][]byte
	fetched map[manifest.Digest]int
	// Fail, when set, fails every fetch.
	Fail error
}

// NewSource is an empty source.
func NewSource() *Source {
	return &Source{chunks: map[manifest.Digest][]byte{}, fetched: map[manifest.Digest]int{}}
}

// Chunk returns chunk c's bytes in buf, or os.ErrNotExist.
func (s *Source) Chunk(ctx context.Context, c manifest.Chunk, buf []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Fail != nil {
		return nil, s.Fail
	}
	b, ok := s.chunks[c.SHA256]
	if !ok {
		return nil, os.ErrNotExist
	}
	s.fetched[c.SHA256]++
	return append(buf[:0], b...), nil
}

// Add makes the source hold chunk d's bytes b.
func (s *Source) Add(d manifest.Digest, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chunks[d] = bytes.Clone(b)
}

// Get returns the bytes the source holds for chunk d, or nil.
func (s *Source) Get(d manifest.Digest) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.chunks[d]
}

// Total is how many chunks the source served.
func (s *Source) Total() (n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.fetched {
		n += v
	}
	return n
}

// Release chunks data with small chunks and returns the manifest of
// app/stable sequence seq; the chunks are added to src.
func Release(t testing.TB, seq uint64, data []byte, src *Source) *manifest.Manifest {
	t.Helper()
	ch := manifest.Chunking{Algorithm: manifest.ChunkingFastCDC, Min: 4 << 10, Avg: 16 << 10, Max: 64 << 10}
	m := &manifest.Manifest{Product: "app", Channel: "stable", Sequence: seq, Version: "1.0",
		Created: time.Unix(1e9, 0), Expires: time.Unix(2e9, 0), Chunking: ch,
		Artifact: manifest.Artifact{Name: "app", Size: int64(len(data)), SHA256: manifest.Sum(data)},
		Install:  manifest.Install{Installer: manifest.InstallerFile, Target: "/opt/app/app"}}
	res, err := publisher.Split(context.Background(), bytes.NewReader(data), ch, 2, func(c publisher.SplitChunk) error {
		src.Add(c.SHA256, c.Data)
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

// WriteManifest stores m in dir as an unsigned envelope, as the store
// keeps a manifest: the store's index does not check signatures (every
// reused chunk is hashed again).
func WriteManifest(t testing.TB, dir string, m *manifest.Manifest) {
	t.Helper()
	p, err := manifest.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	env := signing.NewEnvelope(manifest.PayloadType, p).Marshal()
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), env, 0o644); err != nil {
		t.Fatal(err)
	}
}
