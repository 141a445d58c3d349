package main

import (
	"time"

	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/agent/swarm"
	"github.com/fleetcast/fleetcast/manifest"
)

// view is one agent's swarm.View: what its peer manager would know. The
// peers it follows are seen through their last state delivered (a long-poll
// round trip after they changed, at most one every minStateGap); every
// other agent of its LAN counts as a participant that holds nothing it can
// ask for, as agent/peers.go's unfollowedLocked lists them.
type view struct {
	a       *agent
	follows map[*agent]*seen // followed peers, and what was last delivered of each
	resting map[*agent]float64
	ch      chan struct{} // closed at the next change; nil: nobody waits
}

var _ swarm.View = (*view)(nil)

// seen is a followed peer's state as last delivered, as peerRelease keeps
// it in agent/peers.go.
type seen struct {
	known          bool // a state was delivered: the peer is usable
	bits, fetching []byte
	count, maxC    int
	progress       time.Time
	since          float64 // followed since
}

func (v *view) Snapshot(manifest.ReleaseID) []swarm.Holder {
	s := v.a.sim
	now := s.clock.Now()
	out := make([]swarm.Holder, 0, len(v.a.lan.agents)-1)
	for _, p := range v.a.lan.agents {
		if p == v.a {
			continue
		}
		if st := v.follows[p]; st != nil {
			if st.known {
				out = append(out, swarm.Holder{Addr: p.id, ID: p.id, Bits: st.bits, Fetching: st.fetching, Progress: st.progress})
			}
			continue
		}
		out = append(out, swarm.Holder{Addr: p.id, ID: p.id, Bits: []byte{}, Progress: now})
	}
	return out // in Addr order, as the peer manager sorts them: lan.agents is
}

func (v *view) Usable() int { return len(v.follows) }

func (v *view) Wake() <-chan struct{} {
	if v.ch == nil {
		v.ch = make(chan struct{})
	}
	return v.ch
}

// Ban is counted, not acted on: no simulated peer sends bad data.
func (v *view) Ban(addr, reason string) { v.a.sim.bans++ }

// changed wakes the scheduler: its next Next takes a new snapshot.
func (v *view) changed() {
	if v.ch != nil {
		close(v.ch)
		v.ch = nil
	}
}

// deliver records a state of followed peer p: its bitmaps, and progress
// when it holds more chunks than ever or started another origin fetch.
func (v *view) deliver(p *agent, bits, fetching []byte) {
	st := v.follows[p]
	if st == nil {
		return // no longer followed
	}
	now := v.a.sim.clock.Now()
	c := peerproto.BitCount(bits)
	if !st.known || c > st.maxC || peerproto.NewBits(st.fetching, fetching) {
		st.progress = now
	}
	st.known, st.bits, st.fetching, st.count, st.maxC = true, bits, fetching, c, max(st.maxC, c)
	v.changed()
	v.a.wake()
}
