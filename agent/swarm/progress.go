package swarm

import (
	"sync/atomic"
	"time"

	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/manifest"
)

// Where a chunk's bytes came from, as Progress and the metrics count them.
const (
	SourceOrigin = "origin"
	SourcePeer   = "peer"
	SourceReused = "reused" // copied from another release in the store, or resumed
)

// Counter receives each chunk's accounting as it is verified: the agent's
// metrics. Its methods are safe for concurrent use.
type Counter interface {
	ChunkBytes(source string, n int64)
	ChunkVerified(source string, size int64)
	ChunkRejected(source string)
	OriginChunk(reason string)
}

// noCount counts nothing.
type noCount struct{}

func (noCount) ChunkBytes(string, int64)    {}
func (noCount) ChunkVerified(string, int64) {}
func (noCount) ChunkRejected(string)        {}
func (noCount) OriginChunk(string)          {}

// Progress is the live state of one update: the assembly's workers add to
// it as chunks are verified and written, and Status reads it, without
// either waiting for the other. It also passes each chunk on to the
// agent's metrics. A nil *Progress counts nothing (assemblies in tests).
type Progress struct {
	seq         uint64
	version     string
	started     time.Time
	totalBytes  int64
	totalChunks int
	m           Counter // nil: no counting

	installing           atomic.Bool
	done, doneChunks     atomic.Int64
	origin, peer, reused atomic.Int64
}

// NewProgress starts the progress of the update to m, begun at started,
// passing each chunk on to mx (nil: no counting).
func NewProgress(m *manifest.Manifest, started time.Time, mx Counter) *Progress {
	if mx == nil {
		mx = noCount{}
	}
	return &Progress{seq: m.Sequence, version: m.Version, started: started,
		totalBytes: m.Artifact.Size, totalChunks: len(m.Chunks), m: mx}
}

// Snapshot returns the progress as GET /v1/status reports it.
func (p *Progress) Snapshot() *peerproto.Progress {
	phase := peerproto.PhaseFetching
	if p.installing.Load() {
		phase = peerproto.PhaseInstalling
	}
	return &peerproto.Progress{Sequence: p.seq, Version: p.version, Phase: phase, Started: p.started,
		TotalBytes: p.totalBytes, DoneBytes: p.done.Load(), TotalChunks: p.totalChunks, DoneChunks: int(p.doneChunks.Load()),
		OriginBytes: p.origin.Load(), PeerBytes: p.peer.Load(), ReusedBytes: p.reused.Load()}
}

// Resumed records the chunks an earlier attempt left verified in place.
func (p *Progress) Resumed(bytes int64, chunks int) {
	if p == nil {
		return
	}
	p.reused.Add(bytes)
	p.Placed(bytes, chunks)
	p.m.ChunkBytes(SourceReused, bytes)
}

// SetPresent replaces the bytes and chunks in place, after a re-check
// found some of them damaged.
func (p *Progress) SetPresent(bytes int64, chunks int) {
	if p == nil {
		return
	}
	p.done.Store(bytes)
	p.doneChunks.Store(int64(chunks))
}

// Fetched records a chunk verified from source (for the origin, with the
// reason it was asked of the origin).
func (p *Progress) Fetched(source, reason string, size int64) {
	if p == nil {
		return
	}
	switch source {
	case SourceOrigin:
		p.origin.Add(size)
		p.m.OriginChunk(reason)
	case SourcePeer:
		p.peer.Add(size)
	case SourceReused:
		p.reused.Add(size)
	}
	p.m.ChunkVerified(source, size)
}

// Rejected records a chunk from source that failed its hash check.
func (p *Progress) Rejected(source string) {
	if p != nil {
		p.m.ChunkRejected(source)
	}
}

// Placed records bytes written at their place in the artifact (a chunk at
// each of its offsets).
func (p *Progress) Placed(bytes int64, chunks int) {
	if p == nil {
		return
	}
	p.done.Add(bytes)
	p.doneChunks.Add(int64(chunks))
}

// StartInstall records that the artifact is complete and verified, and
// handed to its installer.
func (p *Progress) StartInstall() {
	p.done.Store(p.totalBytes)
	p.doneChunks.Store(int64(p.totalChunks))
	p.installing.Store(true)
}
