package swarm

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/agent/fetch"
	"github.com/fleetcast/fleetcast/internal/clocktest"
	"github.com/fleetcast/fleetcast/internal/releasetest"
	"github.com/fleetcast/fleetcast/manifest"
)

// The scheduler's rules in time, on a fake clock: each test moves the clock
// to just before and just after the moment a rule names, and no test
// sleeps.

// TestSwarmTakesOverStalledAgent: with another agent that takes part but
// makes no progress, an assembly fetches its own rendezvous share from the
// origin at once, leaves the other's share to it until origin_grace has
// passed, and then takes it over. The assembly's workers run; the test
// waits until all of them wait on the clock before it looks or moves it.
func TestSwarmTakesOverStalledAgent(t *testing.T) {
	const grace = 2 * time.Second
	data := releasetest.NewSource()
	m := releasetest.Release(t, 1, releasetest.Data(7, 600<<10), data)
	clk := clocktest.New(t0)
	f := newMemFleet()
	f.add("idle", m, func(int) bool { return false }, &memPeer{Source: data}, clk.Now())
	mine := 0
	for _, c := range m.Chunks {
		if rendezvous("00000000000000ff", c.SHA256) > rendezvous(f.holders[0].ID, c.SHA256) {
			mine++
		}
	}
	if mine == 0 || mine == len(m.Chunks) {
		t.Fatalf("this agent's share is %d of %d chunks; want some, not all", mine, len(m.Chunks))
	}
	if len(distinctChunks(m)) != len(m.Chunks) {
		t.Fatal("the release repeats a chunk; want each once")
	}
	origin := originOf(m, data)
	sw := swarmConf(f, grace, clk)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	a := startAssemble(ctx, t, m, origin, sw)
	idle := func(when string) {
		t.Helper()
		if clk.BlockUntil(a.over, testOriginConns+sw.Conns) != nil {
			_, err := a.wait()
			t.Fatalf("%s: the assembly ended (error %v) before its workers all waited on the clock; %d chunks from the origin, want %d",
				when, err, origin.Total(), mine)
		}
	}

	idle("at once")
	if got := origin.Total(); got != mine {
		t.Fatalf("at once: %d chunks from the origin; want this agent's share, %d", got, mine)
	}
	// The other agent's share is looked at again every originPass: the last
	// look before origin_grace is one originPass before it.
	clk.Advance(grace - originPass)
	idle("before origin_grace")
	if got := origin.Total(); got != mine {
		t.Fatalf("before origin_grace: %d chunks from the origin; want this agent's share, %d", got, mine)
	}
	clk.Advance(originPass)
	tr, err := a.wait()
	if err != nil {
		t.Fatalf("assemble: %v", err)
	}
	if got := tr.OriginReasons; got[ReasonAssigned] != int64(mine) || got[ReasonPeerStalled] != int64(len(m.Chunks)-mine) {
		t.Errorf("origin reasons %v: want %d %s, %d %s", got, mine, ReasonAssigned, len(m.Chunks)-mine, ReasonPeerStalled)
	}
}

// TestSwarmTakesOverSlowOriginFetch: a chunk that another agent is fetching
// from the origin is left to it for twice origin_grace plus the chunk's
// time at min_throughput, then fetched here too.
func TestSwarmTakesOverSlowOriginFetch(t *testing.T) {
	const grace = time.Second
	data := releasetest.NewSource()
	m := releasetest.Release(t, 1, releasetest.Data(9, 100<<10), data)
	clk := clocktest.New(t0)
	f := newMemFleet()
	f.add("other", m, func(int) bool { return false }, data, clk.Now())
	f.fetching("other", m, func(i int) bool { return i == 0 })
	sw := swarmConf(f, grace, clk)
	sw.MinRate = m.Chunks[0].Size / 10 // about 10 s for the chunk
	jobs := jobsOf(m)[:1]
	s := newSched(len(m.Chunks), jobs, sw, manifest.ReleaseID{})
	s.refreshLocked()
	wait := s.fetchWait(jobs[0])
	if wait < 2*grace+10*time.Second {
		t.Fatalf("fetchWait = %v; want twice origin_grace plus about 10 s", wait)
	}
	steps := []struct {
		to   time.Duration // since the chunk was first seen fetched
		want string
	}{
		{0, ""},
		{2*grace + originPass, ""}, // past twice origin_grace, but the chunk takes longer at min_throughput
		{wait, ""},
		{wait + originPass, ReasonWaited}, // looked at again originPass later
	}
	for _, st := range steps {
		clk.Advance(t0.Add(st.to).Sub(clk.Now()))
		tk := pick(t, s, false)
		if got := reasonOf(tk); got != st.want {
			t.Fatalf("after %v: picked %q; want %q", st.to, got, st.want)
		}
	}
}

// reasonOf is the reason of an origin task, or "" for none.
func reasonOf(tk *task) string {
	if tk == nil {
		return ""
	}
	return tk.reason
}

// TestSwarmPeerPause: a peer that fails a request is not asked again for
// Pause, then for twice as long after a second failure in a row, and so on
// up to 32 times Pause; a peer that is busy (503) is paused for Pause each
// time. A success ends the doubling.
func TestSwarmPeerPause(t *testing.T) {
	const p = 100 * time.Millisecond
	tests := []struct {
		name   string
		err    error
		pauses []time.Duration // after each failure in a row
	}{
		{"failed", &fetch.StatusError{Code: 500}, []time.Duration{p, 2 * p, 4 * p, 8 * p, 16 * p, 32 * p, 32 * p}},
		{"busy", &fetch.StatusError{Code: 503}, []time.Duration{p, p, p, p}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := releasetest.NewSource()
			m := releasetest.Release(t, 1, releasetest.Data(8, 300<<10), data)
			if len(m.Chunks) < len(tt.pauses)+2 {
				t.Fatalf("%d chunks; want at least %d", len(m.Chunks), len(tt.pauses)+2)
			}
			clk := clocktest.New(t0)
			f := newMemFleet()
			f.add("p1", m, nil, data, clk.Now())
			sw := swarmConf(f, time.Second, clk)
			sw.Pause = p
			s := newSched(len(m.Chunks), jobsOf(m), sw, manifest.ReleaseID{})
			s.refreshLocked()
			// fail fails a request to p1 and checks that p1 is paused for
			// exactly d.
			fail := func(d time.Duration) {
				t.Helper()
				tk := pick(t, s, true)
				if tk == nil {
					t.Fatal("no request to p1; want one")
				}
				s.finish(tk, tt.err)
				if tk := pick(t, s, true); tk != nil {
					t.Fatalf("asked p1 for chunk %d right after it failed; want a pause of %v", tk.j.indexes[0], d)
				}
				clk.Advance(d)
				if tk := pick(t, s, true); tk != nil {
					t.Fatalf("asked p1 for chunk %d after %v; want a pause of more than that", tk.j.indexes[0], d)
				}
				clk.Advance(1)
			}
			for _, d := range tt.pauses {
				fail(d)
			}
			tk := pick(t, s, true)
			if tk == nil {
				t.Fatal("no request to p1 after its pause; want one")
			}
			s.finish(tk, nil)
			fail(tt.pauses[0])
		})
	}
}

// TestSwarmOriginBackoff: after an origin request fails, the origin is not
// asked again before a backoff of at most 2 s, then 4 s after the chunk's
// second failure; its third failure ends the assembly.
func TestSwarmOriginBackoff(t *testing.T) {
	data := releasetest.NewSource()
	m := releasetest.Release(t, 1, releasetest.Data(9, 100<<10), data)
	clk := clocktest.New(t0)
	f := newMemFleet()
	// A peer takes part (else the first failure would end the assembly),
	// and holds nothing: with origin_grace 0, this agent asks the origin.
	f.add("other", m, func(int) bool { return false }, data, clk.Now())
	s := newSched(len(m.Chunks), jobsOf(m)[:1], swarmConf(f, 0, clk), manifest.ReleaseID{})
	s.refreshLocked()
	errOrigin := errors.New("origin down")
	for i, most := range []time.Duration{2 * time.Second, 4 * time.Second} {
		tk := pick(t, s, false)
		if tk == nil || tk.reason != ReasonNoHolder {
			t.Fatalf("after failure %d: picked %+v; want the origin, reason %s", i, tk, ReasonNoHolder)
		}
		s.finish(tk, errOrigin)
		backoff := s.originOff.Sub(clk.Now())
		if backoff <= 0 || backoff > most {
			t.Fatalf("backoff after failure %d is %v; want more than 0, at most %v", i+1, backoff, most)
		}
		clk.Advance(backoff - 1)
		if tk := pick(t, s, false); tk != nil {
			t.Fatalf("asked the origin %v after failure %d; want a backoff of %v", backoff-1, i+1, backoff)
		}
		clk.Advance(1)
	}
	tk := pick(t, s, false)
	if tk == nil {
		t.Fatal("no origin request after the backoff; want one")
	}
	s.finish(tk, errOrigin)
	if err := s.result(); !errors.Is(err, errOrigin) {
		t.Fatalf("after the third failure, result %v; want %v", err, errOrigin)
	}
}

// TestSwarmRefreshesPeers: the scheduler takes a new snapshot of the peers
// at once when they report a change, and else once refreshEvery has passed
// since the last one, not at every pick.
func TestSwarmRefreshesPeers(t *testing.T) {
	data := releasetest.NewSource()
	m := releasetest.Release(t, 1, releasetest.Data(9, 100<<10), data)
	clk := clocktest.New(t0)
	f := newMemFleet()
	f.add("p1", m, nil, data, clk.Now())
	s := newSched(len(m.Chunks), jobsOf(m), swarmConf(f, time.Second, clk), manifest.ReleaseID{})
	steps := []struct {
		name      string
		do        func()
		snapshots int
	}{
		{"first", func() {}, 1},
		{"again at once", func() {}, 1},
		{"just before refreshEvery", func() { clk.Advance(refreshEvery - 1) }, 1},
		{"at refreshEvery", func() { clk.Advance(1) }, 2},
		{"a change", f.change, 3},
		{"again after the change", func() {}, 3},
	}
	for _, st := range steps {
		st.do()
		s.refreshLocked()
		if f.snapshots != st.snapshots {
			t.Fatalf("%s: %d snapshots; want %d", st.name, f.snapshots, st.snapshots)
		}
	}
}

// TestSwarmFetchWaitFollowsOriginRate: when this agent's own origin fetches
// get less than min_throughput (a shared origin link, many agents), the
// wait for another agent's fetch is twice the chunk's time at that rate;
// when they get more, it stays at min_throughput's.
func TestSwarmFetchWaitFollowsOriginRate(t *testing.T) {
	const grace = time.Second
	data := releasetest.NewSource()
	m := releasetest.Release(t, 1, releasetest.Data(9, 100<<10), data)
	clk := clocktest.New(t0)
	sw := swarmConf(newMemFleet(), grace, clk)
	sw.MinRate = m.Chunks[0].Size / 10 // about 10 s for the chunk at min_throughput
	jobs := jobsOf(m)
	s := newSched(len(m.Chunks), jobs, sw, manifest.ReleaseID{})
	atMin := s.fetchWait(jobs[0])
	if want := 2*grace + 10*time.Second; atMin < want-time.Second || atMin > want+time.Second {
		t.Fatalf("fetchWait with no origin fetch yet = %v, want about %v", atMin, want)
	}
	fetched := func(j *job, took time.Duration) {
		s.mu.Lock()
		defer s.mu.Unlock()
		tk := &task{j: j, begun: clk.Now()}
		clk.Advance(took)
		s.originFetchedLocked(tk)
	}
	// Faster than min_throughput: no change.
	fetched(jobs[0], time.Duration(float64(time.Second)*float64(jobs[0].chunk.Size)/float64(sw.MinRate)/4))
	if got := s.fetchWait(jobs[0]); got != atMin {
		t.Errorf("after a fast origin fetch fetchWait = %v, want %v", got, atMin)
	}
	// Five times slower than min_throughput, again and again: the average,
	// and the wait, follow.
	for i := range 20 {
		j := jobs[i%len(jobs)]
		fetched(j, time.Duration(float64(time.Second)*5*float64(j.chunk.Size)/float64(sw.MinRate)))
	}
	got := s.fetchWait(jobs[0])
	if want := 2*grace + 2*50*time.Second; got < want*3/4 || got > want*5/4 {
		t.Errorf("after slow origin fetches fetchWait = %v, want about %v (twice the chunk at the observed rate)", got, want)
	}
}
