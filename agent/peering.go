package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/fleetcast/fleetcast/agent/discovery"
	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/agent/store"
	"github.com/fleetcast/fleetcast/agent/swarm"
)

// startPeering starts discovery and the peer manager on the listener's
// port. They run until ctx is done; wait then waits for both to end and
// returns discovery's error, if it failed for another reason.
func (a *Agent) startPeering(ctx context.Context, ln net.Listener) (wait func() error, err error) {
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	p, _ := strconv.Atoi(port)
	cfg := discovery.Config{
		MDNS: a.cfg.MDNS, Interface: a.cfg.MDNSInterface, BrowseInterval: a.cfg.BrowseInterval,
		BrowseMax: a.cfg.BrowseBackoffMax(), Answers: a.cfg.Answers,
		Expiry: a.cfg.PeerExpiry, Static: a.cfg.Peers, StateFile: filepath.Join(a.cfg.DataDir, store.PeersFile),
	}
	d, err := discovery.New(cfg, discovery.Self{AgentID: a.id, FleetID: a.fleet.ID(), Proto: peerproto.Proto, Port: p}, a.log)
	if err != nil {
		return nil, err
	}
	a.peerMgr.Store(newPeerManager(a.peerOptions(), d))
	var wg sync.WaitGroup
	var derr error
	wg.Go(func() {
		if err := d.Run(ctx); err != nil && ctx.Err() == nil {
			derr = fmt.Errorf("discovery: %w", err)
		}
	})
	wg.Go(func() { a.pm().run(ctx) })
	if !a.fleet.Closed() {
		a.log.Warn("no fleet_secret_file: any host on the LAN can discover this agent and read the releases it holds")
	}
	return func() error { wg.Wait(); return derr }, nil
}

// settle waits, at start, for the first mDNS browse and then until some
// peer is found and every peer found has answered (or failed a few quick
// tries), at most 4 s: an agent that starts with others should know them
// before it decides which chunks to fetch from the origin. An agent alone
// on its LAN pays those seconds once, at start.
func (a *Agent) settle(ctx context.Context) {
	if a.pm() == nil || (!a.cfg.MDNS && len(a.cfg.Peers) == 0) {
		return
	}
	deadline, stopDeadline := a.clock.NewTimer(4 * time.Second)
	defer stopDeadline()
	select {
	case <-ctx.Done():
		return
	case <-deadline:
		return
	case <-a.pm().src.Browsed():
	}
	// Alone after the first browse: the others may have started with this
	// one, and answer the next browses (or the deadline passes).
	a.awaitFollows(ctx, deadline, 1)
}

// awaitFollows waits until every peer followed has answered (or failed a
// few quick tries) and at least least are followed, or deadline fires, or
// ctx is done.
func (a *Agent) awaitFollows(ctx context.Context, deadline <-chan time.Time, least int) {
	for {
		if done, n := a.pm().settled(); done && n >= least {
			return
		}
		// A timer's channel fires once: the deadline must end the wait
		// in the select that receives it.
		tick, stop := a.clock.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			stop()
			return
		case <-deadline:
			stop()
			return
		case <-tick:
		case <-a.pm().Wake():
		}
		stop()
	}
}

// peerNews returns a channel that is closed when a peer holds a release
// newer than this agent trusts, so that Run starts a cycle at once.
func (a *Agent) peerNews(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{})
	if a.pm() == nil {
		return ch
	}
	go func() {
		for {
			for _, sub := range a.channels {
				st, err := sub.loaded()
				if err == nil && len(a.offers(sub.id, st)) > 0 {
					a.log.Info("a peer holds a newer release", slog.String("product", sub.id.Product), slog.String("channel", sub.id.Channel))
					close(ch)
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-a.pm().Wake():
			}
			select { // at most a few checks a second, however busy the peers
			case <-ctx.Done():
				return
			case <-a.after(250 * time.Millisecond):
			}
		}
	}()
	return ch
}

// peerOptions is what the agent gives its peer manager.
func (a *Agent) peerOptions() peerOptions {
	return peerOptions{cfg: a.cfg, self: a.id, fleet: a.fleet, log: a.log, clock: a.clock,
		rejected: func() { a.metrics.ChunkRejected(swarm.SourcePeer) }}
}
