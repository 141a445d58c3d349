package agent

import (
	"sync/atomic"
	"time"

	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/manifest"
)

// Where a chunk's bytes came from, as Progress and the metrics count them.
const (
	sourceOrigin = "origin"
	sourcePeer   = "peer"
	sourceReused = "reused" // copied from another release in the store, or resumed
)

// progress is the live state of one update: the assembly's workers add to
// it as chunks are verified and written, and Status reads it, without
// either waiting for the other. It also passes each chunk on to the
// agent's metrics. A nil *progress counts nothing (assemblies in tests).
type progress struct {
	seq         uint64
	version     string
	started     time.Time
	totalBytes  int64
	totalChunks int
	m           *metrics // nil: no metrics

	installing           atomic.Bool
	done, doneChunks     atomic.Int64
	origin, peer, reused atomic.Int64
}

func newProgress(m *manifest.Manifest, started time.Time, mx *metrics) *progress {
	return &progress{seq: m.Sequence, version: m.Version, started: started,
		totalBytes: m.Artifact.Size, totalChunks: len(m.Chunks), m: mx}
}

// snapshot returns the progress as GET /v1/status reports it.
func (p *progress) Snapshot() *peerproto.Progress {
	phase := peerproto.PhaseFetching
	if p.installing.Load() {
		phase = peerproto.PhaseInstalling
	}
	return &peerproto.Progress{Sequence: p.seq, Version: p.version, Phase: phase, Started: p.started,
		TotalBytes: p.totalBytes, DoneBytes: p.done.Load(), TotalChunks: p.totalChunks, DoneChunks: int(p.doneChunks.Load()),
		OriginBytes: p.origin.Load(), PeerBytes: p.peer.Load(), ReusedBytes: p.reused.Load()}
}

// resumed records the chunks an earlier attempt left verified in place.
func (p *progress) Resumed(bytes int64, chunks int) {
	if p == nil {
		return
	}
	p.reused.Add(bytes)
	p.Placed(bytes, chunks)
	p.m.ChunkBytes(sourceReused, bytes)
}

// setPresent replaces the bytes and chunks in place, after a re-check
// found some of them damaged.
func (p *progress) SetPresent(bytes int64, chunks int) {
	if p == nil {
		return
	}
	p.done.Store(bytes)
	p.doneChunks.Store(int64(chunks))
}

// fetched records a chunk verified from source (for the origin, with the
// reason it was asked of the origin).
func (p *progress) Fetched(source, reason string, size int64) {
	if p == nil {
		return
	}
	switch source {
	case sourceOrigin:
		p.origin.Add(size)
		p.m.OriginChunk(reason)
	case sourcePeer:
		p.peer.Add(size)
	case sourceReused:
		p.reused.Add(size)
	}
	p.m.ChunkVerified(source, size)
}

// rejected records a chunk from source that failed its hash check.
func (p *progress) Rejected(source string) {
	if p != nil {
		p.m.ChunkRejected(source)
	}
}

// placed records bytes written at their place in the artifact (a chunk at
// each of its offsets).
func (p *progress) Placed(bytes int64, chunks int) {
	if p == nil {
		return
	}
	p.done.Add(bytes)
	p.doneChunks.Add(int64(chunks))
}

// startInstall records that the artifact is complete and verified, and
// handed to its installer.
func (p *progress) StartInstall() {
	p.done.Store(p.totalBytes)
	p.doneChunks.Store(int64(p.totalChunks))
	p.installing.Store(true)
}
