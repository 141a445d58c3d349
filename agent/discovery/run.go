package discovery

import (
	"context"
	"time"
)

// The first quickBrowses browses listen quickQueryTimeout each and are
// quickBrowseGap apart (about 1.5 s in all), then BrowseInterval.
const (
	quickBrowses      = 3
	quickBrowseGap    = 250 * time.Millisecond
	quickQueryTimeout = 300 * time.Millisecond
)

// Run advertises self and browses (when Config.MDNS), the first browse at
// once, then as browseSchedule says: every BrowseInterval, less often once
// Config.Answers live peers are known. Every BrowseInterval it expires peers
// and writes the state file, until ctx is cancelled, and then returns nil.
// Missing multicast is not an error: it is logged once and Run goes on with
// static and remembered peers, retrying mDNS at each browse. Expired peers
// are noticed (and Changed signalled) at the next tick. On cancel, Run waits
// for a browse in progress (at most maxQueryTimeout), stops advertising and
// writes the state file if it changed. Call Run once per Discovery.
func (d *Discovery) Run(ctx context.Context) error {
	ticker := time.NewTicker(d.cfg.BrowseInterval)
	defer ticker.Stop()
	// Agents that start together miss each other's first answers: the first
	// few browses follow each other closely.
	next := time.NewTimer(0)
	defer next.Stop()
	if !d.cfg.MDNS {
		next.Stop()
	}
	sched := newBrowseSchedule(d.cfg)
	var started time.Time // of the last browse
	foundBefore := 0      // peers found by mDNS before it
	browses := 0
	done := make(chan struct{}, 1)
	busy := false
	housekeep := func() {
		d.sweep()
		d.maybeSave(false)
	}
	housekeep()
	for {
		select {
		case <-ctx.Done():
			if busy {
				<-done
			}
			d.stopServer()
			d.maybeSave(true)
			return nil
		case <-done:
			busy = false
			if browses++; browses < quickBrowses {
				next.Reset(quickBrowseGap)
				continue
			}
			d.once.Do(func() { close(d.browsed) })
			found := d.foundCount()
			next.Reset(time.Until(started.Add(sched.next(d.known(), found > foundBefore))))
		case <-d.stranger:
			// A new agent browsed: browse within BrowseInterval (at a
			// random moment, not all at once) so that it is known soon.
			if !busy && browses >= quickBrowses && sched.reset() {
				next.Reset(time.Duration(d.rand() * float64(d.cfg.BrowseInterval)))
			}
		case <-next.C:
			busy, started = true, time.Now()
			foundBefore = d.foundCount()
			d.mdnsState.quick = browses < quickBrowses // read by browse, written only while none runs
			go func() { d.browse(ctx); done <- struct{}{} }()
		case <-ticker.C:
			housekeep()
			if !busy && browses >= quickBrowses && sched.shorten(d.known()) {
				next.Reset(time.Until(started.Add(sched.interval)))
			}
		}
	}
}

// foundCount is how many peers mDNS answers have added, ever.
func (d *Discovery) foundCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.found
}

// sweep drops expired peers and signals when that changed Peers().
func (d *Discovery) sweep() {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	d.expireLocked(now)
	d.signalLocked(now)
}
