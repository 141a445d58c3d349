package main

import "container/heap"

// events is the simulation's queue of future events on virtual time
// (seconds since the release was published), in time order, ties in the
// order they were scheduled.
type events struct {
	now  float64
	seq  uint64
	heap eventHeap
}

type event struct {
	at  float64
	seq uint64
	fn  func()
}

type eventHeap []event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	return h[i].at < h[j].at || (h[i].at == h[j].at && h[i].seq < h[j].seq)
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// at runs fn at time t (not before now).
func (e *events) at(t float64, fn func()) {
	e.seq++
	heap.Push(&e.heap, event{at: max(t, e.now), seq: e.seq, fn: fn})
}

// run runs the events in order until none is left or stop returns true.
func (e *events) run(stop func() bool) {
	for len(e.heap) > 0 && !stop() {
		ev := heap.Pop(&e.heap).(event)
		e.now = ev.at
		ev.fn()
	}
}

// host is one end of flows: an upload and a download capacity in bytes/s.
type host struct {
	up, down   float64
	ups, downs []*flow // flows it sends, and receives
}

// flow is one transfer of bytes between two hosts. Its rate is its fair
// share at the tighter of its two ends: the sender's upload divided by the
// flows it sends, or the receiver's download divided by the flows it
// receives (a bottleneck share, not a full max-min: capacity one flow
// leaves unused at one end is not handed to the others).
type flow struct {
	src, dst   *host
	rem        float64 // bytes left
	rate, last float64 // bytes/s since last
	ver        uint64  // its completion event is the one of this version
	iu, id     int     // positions in src.ups and dst.downs
	sent       *float64
	done       func()
}

// network moves flows between hosts on the events' time.
type network struct{ ev *events }

// start starts a flow of n bytes from src to dst; done runs when its last
// byte arrived; sent, if not nil, counts the bytes it moves.
func (nw *network) start(src, dst *host, n float64, sent *float64, done func()) *flow {
	f := &flow{src: src, dst: dst, rem: n, last: nw.ev.now, sent: sent, done: done,
		iu: len(src.ups), id: len(dst.downs)}
	src.ups = append(src.ups, f)
	dst.downs = append(dst.downs, f)
	nw.rerate(src, dst)
	return f
}

// stop ends a flow before its end (cancelled); its done does not run.
func (nw *network) stop(f *flow) {
	nw.advance(f)
	nw.remove(f)
}

func (nw *network) remove(f *flow) {
	f.ver++ // its completion event, if any, is void
	s, d := f.src, f.dst
	last := s.ups[len(s.ups)-1]
	s.ups[f.iu], last.iu = last, f.iu
	s.ups = s.ups[:len(s.ups)-1]
	last = d.downs[len(d.downs)-1]
	d.downs[f.id], last.id = last, f.id
	d.downs = d.downs[:len(d.downs)-1]
	nw.rerate(s, d)
}

// advance accounts for the bytes f moved since its last change.
func (nw *network) advance(f *flow) {
	n := min(f.rate*(nw.ev.now-f.last), f.rem)
	f.rem -= n
	f.last = nw.ev.now
	if f.sent != nil {
		*f.sent += n
	}
}

// rerate gives new rates to the flows whose share changed: those src sends
// and those dst receives.
func (nw *network) rerate(src, dst *host) {
	for _, f := range src.ups {
		nw.setRate(f)
	}
	for _, f := range dst.downs {
		if f.src != src {
			nw.setRate(f)
		}
	}
}

func (nw *network) setRate(f *flow) {
	nw.advance(f)
	f.rate = min(f.src.up/float64(len(f.src.ups)), f.dst.down/float64(len(f.dst.downs)))
	f.ver++
	ver := f.ver
	nw.ev.at(nw.ev.now+f.rem/f.rate, func() {
		if f.ver != ver {
			return
		}
		nw.advance(f)
		f.rem = 0
		nw.remove(f)
		f.done()
	})
}
