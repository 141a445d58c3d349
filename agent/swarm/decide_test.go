package swarm

import (
	"errors"
	"testing"

	"github.com/fleetcast/fleetcast/internal/releasetest"
	"github.com/fleetcast/fleetcast/manifest"
)

// TestSchedulerOriginOnly: without peers, the decision surface hands out
// every chunk to the origin in artifact order, and is done when each one
// is finished; an origin failure without peers ends the assembly.
func TestSchedulerOriginOnly(t *testing.T) {
	m := releasetest.Release(t, 1, releasetest.Data(3, 600<<10), releasetest.NewSource())
	s := NewScheduler(t.Context(), m.Chunks, nil, manifest.ReleaseID{})
	first := s.Next(false)
	if first == nil || first.Peer() != nil || first.Indexes()[0] != 0 || first.Reason() != ReasonNoPeers {
		t.Fatalf("first task %+v; want chunk 0 from the origin", first)
	}
	if s.Next(true) != nil {
		t.Fatal("a peer task without peers")
	}
	for i := range m.Chunks {
		tk := first
		if i > 0 {
			tk = s.Next(false)
		}
		if tk == nil || tk.Indexes()[0] != i || tk.Chunk() != m.Chunks[i] {
			t.Fatalf("task %d: %+v; want chunk %d", i, tk, i)
		}
		if !s.Finish(tk, nil) {
			t.Fatalf("chunk %d not to be stored", i)
		}
	}
	if s.Remaining() != 0 || s.Next(false) != nil {
		t.Fatalf("remaining %d after every chunk", s.Remaining())
	}

	failing := NewScheduler(t.Context(), m.Chunks, nil, manifest.ReleaseID{})
	if failing.Finish(failing.Next(false), errors.New("broke off")) {
		t.Fatal("a failed task is to be stored")
	}
	if tk := failing.Next(false); tk != nil {
		t.Fatalf("task %+v after the origin failed with no peer to help", tk)
	}
}
