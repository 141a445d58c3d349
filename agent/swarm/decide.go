package swarm

import (
	"context"

	"github.com/fleetcast/fleetcast/agent/store"
	"github.com/fleetcast/fleetcast/manifest"
)

// Scheduler is the scheduler's decisions without its waiting and without
// any transfer: the same code that Assemble's workers run (they block in
// it until it has a task), for a caller that runs its own workers on its
// own time, such as a simulator on virtual time (tools/fleetsim).
//
// Its caller asks for a task when a worker is idle (Next), carries it out,
// and reports its end (Finish). When Next has nothing, the caller asks again
// when something changed: a task finished, the View's Wake channel closed,
// or the Clock moved on by WaitTick (the rules of origin_grace are measured
// in time). Its methods are safe for concurrent use.
type Scheduler struct {
	s   *sched
	ctx context.Context
}

// Task is one request for a chunk: from the origin (Peer nil) or a peer.
type Task struct{ t *task }

// WaitTick is the longest Assemble's idle workers wait before they ask the
// scheduler again, whatever else happens.
const WaitTick = waitTick

// NewScheduler schedules the fetch of every chunk of a release with chunks,
// none held at the start, from the peers and origin sw describes (nil: the
// origin alone). Its tasks' contexts derive from ctx.
func NewScheduler(ctx context.Context, chunks []manifest.Chunk, sw *Config, key manifest.ReleaseID) *Scheduler {
	jobs := planJobs(chunks, nil, func(manifest.Chunk) *store.Location { return nil })
	return &Scheduler{s: newSched(len(chunks), jobs, sw, key), ctx: ctx}
}

// Next returns a task for an origin worker (peer false) or a peer worker,
// started now, or nil when there is none now.
func (s *Scheduler) Next(peer bool) *Task {
	if t, _, _, _ := s.s.poll(s.ctx, peer); t != nil {
		return &Task{t}
	}
	return nil
}

// Finish records a task's end: err nil if it delivered its chunk. It
// returns true when the chunk is to be stored: the first successful task
// of its job. A task cancelled (Cancelled) ends with a non-nil err too.
func (s *Scheduler) Finish(t *Task, err error) bool { return s.s.finish(t.t, err) }

// Remaining counts the chunks (distinct digests) not fetched yet.
func (s *Scheduler) Remaining() int {
	s.s.mu.Lock()
	defer s.s.mu.Unlock()
	return s.s.remaining
}

// Chunk is the chunk to fetch.
func (t *Task) Chunk() manifest.Chunk { return t.t.j.chunk }

// Indexes lists where the chunk appears in the artifact.
func (t *Task) Indexes() []int { return t.t.j.indexes }

// Peer is the peer to ask, or nil for the origin.
func (t *Task) Peer() *Holder { return t.t.peer }

// Reason says why the origin is asked (Reason* constants), or which kind of
// peer task it is ("" or "end-game").
func (t *Task) Reason() string { return t.t.reason }

// Cancelled reports whether the scheduler no longer needs the task (the
// chunk came from another task first, or the assembly ended); its caller
// ends it and calls Finish with an error.
func (t *Task) Cancelled() bool { return t.t.ctx.Err() != nil }
