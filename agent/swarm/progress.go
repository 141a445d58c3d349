package swarm

import (
	"maps"
	"sync"
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

// Progress is the tally of one assembly: where its chunks came from and
// how much is in place. The assembly's workers add to it as chunks are
// verified and written, the status API reads it (Snapshot) while they do,
// without either waiting for the other, and Assemble returns the Transfer
// built from it at the end. It passes each chunk on to the agent's metrics.
// One Progress counts one assembly; Assemble makes one if given none.
type Progress struct {
	seq         uint64
	version     string
	started     time.Time
	totalBytes  int64
	totalChunks int
	m           Counter

	installing           atomic.Bool
	done, doneChunks     atomic.Int64 // in place, from any source, each offset counted
	origin, originChunks atomic.Int64
	peer, peerChunks     atomic.Int64
	peerFailures         atomic.Int64
	reused               atomic.Int64 // copied from the store
	resumed              atomic.Int64 // in place at the start, from an earlier attempt
	dup                  atomic.Int64 // written again at a chunk's later offsets
	refetched            atomic.Int64 // chunks that failed a re-check

	reasonMu sync.Mutex
	reasons  map[string]int64 // origin chunks by reason
}

func NewProgress(m *manifest.Manifest, started time.Time, mx Counter) *Progress {
	if mx == nil {
		mx = noCount{}
	}
	return &Progress{seq: m.Sequence, version: m.Version, started: started,
		totalBytes: m.Artifact.Size, totalChunks: len(m.Chunks), m: mx, reasons: make(map[string]int64)}
}

// Snapshot returns the progress as GET /v1/status reports it.
func (p *Progress) Snapshot() *peerproto.Progress {
	phase := peerproto.PhaseFetching
	if p.installing.Load() {
		phase = peerproto.PhaseInstalling
	}
	return &peerproto.Progress{Sequence: p.seq, Version: p.version, Phase: phase, Started: p.started,
		TotalBytes: p.totalBytes, DoneBytes: p.done.Load(), TotalChunks: p.totalChunks, DoneChunks: int(p.doneChunks.Load()),
		OriginBytes: p.origin.Load(), PeerBytes: p.peer.Load(), ReusedBytes: p.reused.Load() + p.resumed.Load()}
}

// transfer returns the tally as the assembly reports it at its end.
func (p *Progress) transfer() peerproto.Transfer {
	p.reasonMu.Lock()
	reasons := maps.Clone(p.reasons)
	p.reasonMu.Unlock()
	return peerproto.Transfer{Origin: p.origin.Load(), OriginChunks: p.originChunks.Load(),
		Peer: p.peer.Load(), PeerChunks: p.peerChunks.Load(), PeerFailures: p.peerFailures.Load(), OriginReasons: reasons,
		Resumed: p.resumed.Load(), ReusedLocal: p.reused.Load(), Duplicate: p.dup.Load(), Refetched: p.refetched.Load(),
		ArtifactBytes: p.totalBytes}
}

// Resumed records the chunks an earlier attempt left verified in place.
func (p *Progress) Resumed(bytes int64, chunks int) {
	p.resumed.Add(bytes)
	p.done.Add(bytes)
	p.doneChunks.Add(int64(chunks))
	p.m.ChunkBytes(SourceReused, bytes)
}

// Stored records a chunk of size bytes, verified from source (for the
// origin, with the reason it was asked of the origin), and written at each
// of its copies offsets in the artifact.
func (p *Progress) Stored(source, reason string, size int64, copies int) {
	switch source {
	case SourceOrigin:
		p.origin.Add(size)
		p.originChunks.Add(1)
		p.reasonMu.Lock()
		p.reasons[reason]++
		p.reasonMu.Unlock()
		p.m.OriginChunk(reason)
	case SourcePeer:
		p.peer.Add(size)
		p.peerChunks.Add(1)
	case SourceReused:
		p.reused.Add(size)
	}
	p.dup.Add(size * int64(copies-1))
	p.done.Add(size * int64(copies))
	p.doneChunks.Add(int64(copies))
	p.m.ChunkVerified(source, size)
}

// Rejected records a chunk from source that failed its hash check.
func (p *Progress) Rejected(source string) {
	p.m.ChunkRejected(source)
}

// peerFailed records a request to a peer that failed.
func (p *Progress) peerFailed() {
	p.peerFailures.Add(1)
}

// Rechecked records a re-check of every chunk that found bad ones: they
// are fetched again, and bytes in chunks are in place now.
func (p *Progress) Rechecked(bad int, bytes int64, chunks int) {
	p.refetched.Add(int64(bad))
	p.done.Store(bytes)
	p.doneChunks.Store(int64(chunks))
}

// StartInstall records that the artifact is complete and verified, and
// handed to its installer.
func (p *Progress) StartInstall() {
	p.done.Store(p.totalBytes)
	p.doneChunks.Store(int64(p.totalChunks))
	p.installing.Store(true)
}
