package origintest

import (
	"context"
	"sync"
)

// Gate holds chunk responses until it lets them go. Its methods may be
// called from any goroutine.
type Gate struct {
	free     int           // requests still let through unheld; guarded by the Origin's mu
	pass     chan struct{} // a send lets one held response go
	open     chan struct{} // closed: every response goes, held or later
	held     chan struct{} // closed when the first response is held
	openOnce sync.Once
	heldOnce sync.Once
}

// Hold lets the next free chunk requests through and holds every later
// one at the gate it returns. It replaces an earlier gate, which is
// opened.
func (o *Origin) Hold(free int) *Gate {
	g := &Gate{free: free, pass: make(chan struct{}), open: make(chan struct{}), held: make(chan struct{})}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.gate != nil {
		o.gate.Open()
	}
	o.gate = g
	return g
}

// Pass lets one held response go: it waits until one is held, or until
// the gate is opened.
func (g *Gate) Pass() {
	select {
	case g.pass <- struct{}{}:
	case <-g.open:
	}
}

// Open lets every held response go, and every later one through. Later
// calls do nothing.
func (g *Gate) Open() { g.openOnce.Do(func() { close(g.open) }) }

// Held is closed once a response is held at the gate.
func (g *Gate) Held() <-chan struct{} { return g.held }

// admit counts one request at the gate, with the Origin's mu held, and
// returns the gate it must wait at, or nil.
func (g *Gate) admit() *Gate {
	if g == nil {
		return nil
	}
	if g.free > 0 {
		g.free--
		return nil
	}
	return g
}

// wait holds a response until the gate lets it go or ctx ends; it reports
// whether the response may go on. A nil gate holds nothing.
func (g *Gate) wait(ctx context.Context) bool {
	if g == nil {
		return true
	}
	g.heldOnce.Do(func() { close(g.held) })
	select {
	case <-g.pass:
		return true
	case <-g.open:
		return true
	case <-ctx.Done():
		return false
	}
}
