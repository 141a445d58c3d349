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

// Run advertises self and browses (when Config.MDNS) every BrowseInterval,
// the first browse at once; it expires peers and writes the state file,
// until ctx is cancelled, and then returns nil. Missing multicast is not an
// error: it is logged once and Run goes on with static and remembered peers,
// retrying mDNS at each browse. Expired peers are noticed (and Changed
// signalled) at the next tick. On cancel, Run waits for a browse in progress
// (at most maxQueryTimeout), stops advertising and writes the state file if
// it changed. Call Run once per Discovery.
func (d *Discovery) Run(ctx context.Context) error {
	ticker := time.NewTicker(d.cfg.BrowseInterval)
	defer ticker.Stop()
	// Agents that start together miss each other's first answers: the first
	// few browses follow each other closely.
	soon := time.NewTimer(time.Hour)
	soon.Stop()
	browses := 0
	done := make(chan struct{}, 1)
	busy := false
	tick := func() {
		if d.cfg.MDNS && !busy {
			busy = true
			d.mdnsState.quick = browses < quickBrowses // read by browse, written only while none runs
			go func() { d.browse(ctx); done <- struct{}{} }()
		}
		d.sweep()
		d.maybeSave(false)
	}
	tick()
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
				soon.Reset(quickBrowseGap)
			} else {
				d.once.Do(func() { close(d.browsed) })
			}
		case <-soon.C:
			tick()
		case <-ticker.C:
			tick()
		}
	}
}

// sweep drops expired peers and signals when that changed Peers().
func (d *Discovery) sweep() {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	d.expireLocked(now)
	d.signalLocked(now)
}
