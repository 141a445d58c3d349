package swarm

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/agent/store"
	"github.com/fleetcast/fleetcast/internal/releasetest"
	"github.com/fleetcast/fleetcast/manifest"
)

// TestHoldingsScan: the holdings an agent builds at start from the store
// that assemblies left, complete and partial.
func TestHoldingsScan(t *testing.T) {
	s, src := newTestStore(t), releasetest.NewSource()
	data1, data2 := releasetest.Data(11, 300<<10), releasetest.Data(12, 300<<10)
	m1 := releasetest.Release(t, 1, data1, src)
	if _, err := assembleRelease(t, s, m1, src); err != nil {
		t.Fatal(err)
	}
	// Release 2 is partial: every other chunk is in artifact.part and the journal.
	m2 := releasetest.Release(t, 2, data2, src)
	dir2 := s.ReleaseDir(manifest.ChannelID{Product: "app", Channel: "stable"}.Release(2))
	if err := os.MkdirAll(dir2, 0o755); err != nil {
		t.Fatal(err)
	}
	releasetest.WriteManifest(t, dir2, m2)
	if err := os.WriteFile(filepath.Join(dir2, store.PartFile), data2, 0o644); err != nil {
		t.Fatal(err)
	}
	j, err := store.OpenJournal(filepath.Join(dir2, store.HaveFile))
	if err != nil {
		t.Fatal(err)
	}
	var even []int
	for i := 0; i < len(m2.Chunks); i += 2 {
		even = append(even, i)
	}
	if err := j.Add(even...); err != nil {
		t.Fatal(err)
	}
	j.Close()
	// What scan must skip: a damaged manifest, a manifest in the wrong
	// directory, a directory that is not a sequence.
	bad := s.ReleaseDir(manifest.ChannelID{Product: "app", Channel: "stable"}.Release(3))
	os.MkdirAll(bad, 0o755)
	os.WriteFile(filepath.Join(bad, store.ManifestFile), []byte("{"), 0o644)
	wrong := s.ReleaseDir(manifest.ChannelID{Product: "app", Channel: "stable"}.Release(4))
	os.MkdirAll(wrong, 0o755)
	releasetest.WriteManifest(t, wrong, m1)
	notSeq := filepath.Join(s.Dir, "app", "stable", "tmp")
	os.MkdirAll(notSeq, 0o755)
	releasetest.WriteManifest(t, notSeq, m1)

	h := store.NewHoldings()
	h.Scan(s.Dir)
	_, snap := h.Snapshot()
	if len(snap) != 2 {
		t.Fatalf("scan found %+v, want releases 1 and 2", snap)
	}
	if _, opened := store.Open(s.Dir).Held.Snapshot(); !reflect.DeepEqual(opened, snap) {
		t.Errorf("store.Open holds %+v, scan %+v", opened, snap)
	}
	all := make([]bool, len(m1.Chunks))
	for i := range all {
		all[i] = true
	}
	if snap[0].Sequence != 1 || snap[0].Have != peerproto.EncodeBitmap(all) || !heldIn(h, m1, store.ArtifactFile) {
		t.Errorf("release 1: %+v, want complete", snap[0])
	}
	half := make([]bool, len(m2.Chunks))
	for _, i := range even {
		half[i] = true
	}
	if snap[1].Sequence != 2 || snap[1].Have != peerproto.EncodeBitmap(half) || !heldIn(h, m2, store.PartFile) {
		t.Errorf("release 2: %+v, want chunks %v of %d", snap[1], even, len(m2.Chunks))
	}
	// Every chunk held is found where its bytes are.
	for _, m := range []*manifest.Manifest{m1, m2} {
		for i, c := range m.Chunks {
			loc, ok := h.Lookup(c.SHA256)
			if m == m2 && i%2 == 1 {
				if ok {
					t.Errorf("release 2 chunk %d: found at %+v, not held", i, loc)
				}
				continue
			}
			if !ok {
				t.Errorf("release %d chunk %d: not found", m.Sequence, i)
				continue
			}
			if got := readLocation(t, loc); manifest.Sum(got) != c.SHA256 {
				t.Errorf("release %d chunk %d: bytes at %+v do not match", m.Sequence, i, loc)
			}
		}
	}
}

func readLocation(t *testing.T, loc store.Location) []byte {
	t.Helper()
	f, err := os.Open(loc.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, loc.Offset, loc.Size))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// heldIn reports whether h finds m's first chunk in m's release directory,
// in the file named file (the artifact of a complete release, the part of
// an incomplete one).
func heldIn(h *store.Holdings, m *manifest.Manifest, file string) bool {
	loc, ok := h.Lookup(m.Chunks[0].SHA256)
	return ok && filepath.Base(loc.Path) == file
}
