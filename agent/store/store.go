// Package store owns the agent's data directory (docs/SPEC.md §7): its lock,
// the agent's id, the rotated root, each subscription's state file, the
// installers' state directories, and the chunk store (release directories,
// their journals, and Holdings, the one in-memory index of which chunks are
// held where, which the peer API serves).
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"

	"github.com/fleetcast/fleetcast/internal/boundedfile"

	"github.com/fleetcast/fleetcast/internal/atomicfile"
	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/signing"
)

// The chunk store keeps the releases an agent holds, one directory each
// (docs/SPEC.md, "Agent data directory"):
//
//	releases/<product>/<channel>/<sequence>/manifest.json  signed envelope, as fetched
//	releases/<product>/<channel>/<sequence>/artifact.part  chunks at their offsets, as verified
//	releases/<product>/<channel>/<sequence>/have           journal: indexes of verified chunks
//	releases/<product>/<channel>/<sequence>/artifact       the whole artifact, after its check
//
// A chunk enters the store when its bytes, already checked against its
// SHA-256, are written at its offset and its index is appended to the
// journal. The store is content-addressed through its Holdings, the index
// of every chunk it holds, by digest, across all releases: a new release
// reuses any chunk an interrupted attempt (resume) or an installed release
// (delta) left.
const (
	ReleasesDir  = "releases"
	ManifestFile = "manifest.json"
	PartFile     = "artifact.part"
	HaveFile     = "have"
	ArtifactFile = "artifact"
)

// MaxJournal bounds the journal file: 4 bytes an entry, each chunk at most
// a few times (a chunk re-verified after a crash is appended again).
const MaxJournal = 4 * 4 * manifest.MaxChunks

// Store is the agent's chunk store under dataDir. Open makes one.
type Store struct {
	Dir  string    // dataDir/releases
	Held *Holdings // the one index of the chunks held: what the peer API serves and assemblies copy from
}

// Open returns the chunk store at dir (dataDir/releases) with its
// holdings loaded from the release directories there (Holdings.Scan).
func Open(dir string) *Store {
	s := &Store{Dir: dir, Held: NewHoldings()}
	s.Held.Scan(dir)
	return s
}

// ReleaseDir is the directory of release r: releases/<product>/<channel>/<sequence>.
func (s *Store) ReleaseDir(r manifest.ReleaseID) string {
	return filepath.Join(s.Dir, r.Product, r.Channel, strconv.FormatUint(r.Sequence, 10))
}

// SaveManifest keeps the signed envelope with the release, before any chunk.
func (s *Store) SaveManifest(r manifest.ReleaseID, envelope []byte) error {
	dir := s.ReleaseDir(r)
	if err := atomicfile.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return atomicfile.WriteFile(filepath.Join(dir, ManifestFile), envelope, 0o644)
}

// LoadManifest reads a held release's manifest WITHOUT checking signatures:
// callers use it only to find chunks, each verified again on use, or for a
// release verified when it was stored.
func LoadManifest(dir string) (*manifest.Manifest, error) {
	b, err := ReadLimited(filepath.Join(dir, ManifestFile), signing.MaxEnvelopeSize)
	if err != nil {
		return nil, err
	}
	env, err := signing.ParseEnvelope(b)
	if err != nil {
		return nil, err
	}
	return manifest.Decode(env.Payload)
}

// Complete reports whether the release's whole artifact is in the store.
func (s *Store) Complete(r manifest.ReleaseID) bool {
	_, err := os.Stat(s.ArtifactPath(r))
	return err == nil
}

// ArtifactPath is the path of a complete release's artifact.
func (s *Store) ArtifactPath(r manifest.ReleaseID) string {
	return filepath.Join(s.ReleaseDir(r), ArtifactFile)
}

// Location is where a chunk's bytes can be read in the store.
type Location struct {
	Path   string
	Offset int64
	Size   int64
}

// Remove deletes every release of a channel except those in keep.
func (s *Store) Remove(ch manifest.ChannelID, keep ...uint64) error {
	dir := filepath.Join(s.Dir, ch.Product, ch.Channel)
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, e := range ents {
		seq, err := strconv.ParseUint(e.Name(), 10, 64)
		if err != nil || slices.Contains(keep, seq) {
			continue
		}
		s.Held.Drop(ch.Release(seq)) // peers and assemblies stop reading before the files go
		errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
	return errors.Join(errs...)
}

// Journal appends the indexes of verified chunks to a release's have file.
// Entries are written after the chunk's bytes, so after a crash every entry
// names a chunk whose bytes were written; the whole-file check at the end
// catches what a power loss may still have lost.
type Journal struct {
	mu sync.Mutex
	f  *os.File
}

func OpenJournal(path string) (*Journal, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	return &Journal{f: f}, nil
}

func (j *Journal) Add(idx ...int) error {
	b := make([]byte, 4*len(idx))
	for i, x := range idx {
		binary.BigEndian.PutUint32(b[4*i:], uint32(x))
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	_, err := j.f.Write(b)
	return err
}

// Reset empties the journal, for a release whose chunks are re-verified.
func (j *Journal) Reset() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.f.Truncate(0)
}

func (j *Journal) Close() error { return j.f.Close() }

// ReadJournal returns which of n chunks the journal at path names; a
// missing journal names none. A torn last entry is ignored.
func ReadJournal(path string, n int) ([]bool, error) {
	have := make([]bool, n)
	b, err := ReadLimited(path, MaxJournal)
	if errors.Is(err, fs.ErrNotExist) {
		return have, nil
	}
	if err != nil {
		return nil, err
	}
	for len(b) >= 4 {
		x := binary.BigEndian.Uint32(b)
		b = b[4:]
		if int64(x) >= int64(n) {
			return nil, fmt.Errorf("journal %s: chunk index %d out of range (%d chunks)", path, x, n)
		}
		have[x] = true
	}
	return have, nil
}

// ReadLimited reads a whole file of at most limit bytes.
func ReadLimited(path string, limit int64) ([]byte, error) {
	return boundedfile.Read(path, limit)
}
