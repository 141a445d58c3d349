package agent

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/agent/swarm"
	"github.com/fleetcast/fleetcast/internal/origintest"
	"github.com/fleetcast/fleetcast/internal/releasetest"
)

// TestStatusProgress holds back the origin's chunks and lets them go one
// at a time: GET /v1/status shows the update in progress as it grows, and
// nothing once the release is installed.
func TestStatusProgress(t *testing.T) {
	o := origintest.New(t, t.TempDir())
	key := liveKey(t)
	target := filepath.Join(t.TempDir(), "app")
	rel := publishLive(t, o.Dir(), key, 512<<10, target)
	gate := o.Hold(0)
	l := startLiveAgent(t, o.URL(), key, target, nil)
	size, chunks := rel.m.Artifact.Size, len(rel.m.Chunks)
	if chunks < 4 {
		t.Fatalf("release has %d chunks; the test needs at least 4", chunks)
	}

	st := l.waitStatus(t, "progress", func(s peerproto.SubscriptionStatus) bool { return s.Progress != nil })
	p := st.Progress
	if p.Phase != peerproto.PhaseFetching || p.Sequence != rel.m.Sequence || p.Version != "1.0" || p.TotalBytes != size ||
		p.TotalChunks != chunks || p.DoneBytes != 0 || p.Started.IsZero() || time.Since(p.Started) > time.Minute {
		t.Fatalf("progress before any chunk: %+v; want fetching %d bytes in %d chunks, none done", *p, size, chunks)
	}
	var done int64
	for i := range 3 {
		gate.Pass() // one chunk response
		st = l.waitStatus(t, "more bytes done", func(s peerproto.SubscriptionStatus) bool { return s.Progress != nil && s.Progress.DoneBytes > done })
		p = st.Progress
		want := sumChunks(rel, i+1)
		if p.Phase != peerproto.PhaseFetching || p.DoneBytes != want || p.DoneChunks != i+1 || p.OriginBytes != want ||
			p.PeerBytes != 0 || p.ReusedBytes != 0 || p.DoneBytes >= size {
			t.Fatalf("progress after %d chunks: %+v; want %d bytes done, all from the origin", i+1, *p, want)
		}
		done = p.DoneBytes
	}
	gate.Open()

	st = l.waitStatus(t, "the end of the cycle", cycleDone)
	if st.LastOutcome != peerproto.Updated || st.Progress != nil || st.InstalledSequence != rel.m.Sequence {
		t.Fatalf("after the cycle: outcome %q, progress %+v, installed %d; want updated, no progress, %d",
			st.LastOutcome, st.Progress, st.InstalledSequence, rel.m.Sequence)
	}
	if tr := st.LastTransfer; tr == nil || tr.Origin != size || tr.ArtifactBytes != size || st.LastTransferSequence != rel.m.Sequence {
		t.Fatalf("last transfer %+v (sequence %d); want %d bytes from the origin for sequence %d", tr, st.LastTransferSequence, size, rel.m.Sequence)
	}
	if got, err := os.ReadFile(target); err != nil || !bytes.Equal(got, rel.data) {
		t.Fatalf("installed file: %d bytes, %v; want the release's %d", len(got), err, size)
	}
}

// sumChunks is the size of the first n chunks of the release: with one
// origin connection, they come in artifact order.
func sumChunks(rel liveRelease, n int) int64 {
	var s int64
	for _, c := range rel.m.Chunks[:n] {
		s += c.Size
	}
	return s
}

// TestProgressSnapshot checks the phases and the counters of each source,
// duplicates and a re-check included.
func TestProgressSnapshot(t *testing.T) {
	src := releasetest.NewSource()
	m := releasetest.Release(t, 3, releasetest.Data(3, 200<<10), src)
	p := swarm.NewProgress(m, time.Unix(1e9, 0), nil)
	p.Resumed(1000, 1)
	p.Stored(swarm.SourceOrigin, swarm.ReasonNoPeers, 300, 2) // at two offsets
	p.Stored(swarm.SourcePeer, "", 200, 1)
	p.Stored(swarm.SourceReused, "", 100, 1)
	got := p.Snapshot()
	want := peerproto.Progress{Sequence: 3, Version: "1.0", Phase: peerproto.PhaseFetching, Started: time.Unix(1e9, 0),
		TotalBytes: m.Artifact.Size, DoneBytes: 1900, OriginBytes: 300, PeerBytes: 200, ReusedBytes: 1100,
		TotalChunks: len(m.Chunks), DoneChunks: 5}
	if *got != want {
		t.Fatalf("snapshot %+v; want %+v", *got, want)
	}
	p.Rechecked(1, 900, 2)
	if got := p.Snapshot(); got.DoneBytes != 900 || got.DoneChunks != 2 {
		t.Fatalf("after a re-check: %d bytes, %d chunks done; want 900, 2", got.DoneBytes, got.DoneChunks)
	}
	p.StartInstall()
	if got := p.Snapshot(); got.Phase != peerproto.PhaseInstalling || got.DoneBytes != m.Artifact.Size || got.DoneChunks != len(m.Chunks) {
		t.Fatalf("installing: %+v; want phase installing, every byte done", *got)
	}
}
