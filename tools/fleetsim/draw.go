package main

// The peer draw of agent/peers.go (sync, fillLocked, redrawLocked), kept
// small: each agent follows half of peer_degree peers of its LAN, drawn at
// random; a peer that has all the followers it takes (half of peer_degree
// plus followerSlack) refuses and rests for fullFor; every redrawEvery the
// least useful followed peer (fewest chunks known) is left, rests for
// redrawEvery, and another is drawn.

func (a *agent) degree() int { return (a.sim.p.Degree + 1) / 2 }

func (a *agent) maxFollowers() int { return a.sim.p.Degree/2 + followerSlack }

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

// redraw leaves the least useful followed peer, once every redrawEvery,
// and draws another.
func (a *agent) redraw() {
	s := a.sim
	now := s.ev.now
	s.ev.at(now+redrawEvery, a.redraw)
	if len(a.view.follows) < a.degree() || len(a.lan.agents)-1 <= len(a.view.follows) {
		return
	}
	var worst *agent
	worstScore := 0
	for p, st := range a.view.follows {
		if now-st.since < redrawEvery {
			continue
		}
		score := -1
		if st.known {
			score = st.count
		}
		if worst == nil || score < worstScore || (score == worstScore && s.rng.IntN(2) == 0) {
			worst, worstScore = p, score
		}
	}
	if worst == nil {
		return
	}
	delete(a.view.follows, worst)
	delete(worst.followers, a)
	a.view.resting[worst] = now + redrawEvery
	a.view.changed()
	a.fill()
}
