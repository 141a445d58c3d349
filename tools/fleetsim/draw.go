package main

// The peer draw of agent/peers.go (sync, fillLocked), kept small. An
// assembling agent follows every peer discovery lists, up to
// maxRolloutFollows, drawn at random; a peer that serves maxFollowers
// follows refuses and rests for fullFor. Every agent of the simulation
// assembles for the whole run, so the idle agent's bounded set (half of
// peer_degree, re-drawn every redrawEvery) does not show here; -degree
// sets the follow count instead, to see what bounded sets would do.

func (a *agent) degree() int {
	if d := a.sim.p.Degree; d > 0 {
		return (d + 1) / 2
	}
	return maxRolloutFollows
}

func (a *agent) maxFollowers() int { return maxFollowers }

// fill follows peers drawn at random until the follow degree is reached;
// resting ones only when no other is left.
func (a *agent) fill() {
	s := a.sim
	now := s.ev.now
	if len(a.view.follows) >= a.degree() {
		return
	}
	var others, resting []*agent
	for _, p := range a.lan.agents {
		switch {
		case p == a || a.view.follows[p] != nil:
		case a.view.resting[p] > now:
			resting = append(resting, p)
		default:
			others = append(others, p)
		}
	}
	shuffle := func(ps []*agent) { s.rng.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] }) }
	shuffle(others)
	shuffle(resting)
	for _, p := range append(others, resting...) {
		if len(a.view.follows) >= a.degree() {
			break
		}
		if len(p.followers) >= a.maxFollowers() {
			a.view.resting[p] = now + fullFor // it answered 503
			continue
		}
		a.follow(p)
	}
}

// follow starts following p: its state arrives a round trip later.
func (a *agent) follow(p *agent) {
	s := a.sim
	a.view.follows[p] = &seen{since: s.ev.now}
	p.followers[a] = true
	a.view.changed()
	if s.ev.now == 0 && !p.started {
		return // before the release: known() delivers the first state
	}
	s.ev.at(s.ev.now+2*s.p.Latency.Seconds(), func() {
		if p.started {
			a.view.deliver(p, clone(p.bits), clone(p.fetching))
		} else if st := a.view.follows[p]; st != nil {
			st.known, st.progress = true, s.clock.Now()
		}
	})
}
