package agent

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/agent/store"
	"github.com/fleetcast/fleetcast/agent/swarm"
	"github.com/fleetcast/fleetcast/manifest"
)

// channel is one subscription: its state as its cycles last loaded or saved
// it, how its last cycle ended, and its update in progress. Status, metrics
// and the watch for peers' news read the state here, not from the data
// directory; only cycles read and write the state file.
type channel struct {
	id manifest.ChannelID

	mu       sync.Mutex
	state    store.State                  // as last loaded or saved
	stateErr error                        // why the state file could not be read, if it could not
	status   peerproto.SubscriptionStatus // the last cycle's outcome and transfer
	live     *swarm.Progress              // the update in progress, or nil
}

// newChannel makes the channel of subscription id, with the state its file
// holds now; an unreadable file leaves it zero (its cycles then fail and
// say why).
func newChannel(dataDir string, id manifest.ChannelID) *channel {
	ch := &channel{id: id,
		status: peerproto.SubscriptionStatus{Product: id.Product, Channel: id.Channel}}
	ch.setState(store.LoadState(dataDir, id))
	return ch
}

// setState publishes the state a cycle loaded or saved, or the error that
// kept it from loading it.
func (ch *channel) setState(st store.State, err error) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if err != nil {
		ch.stateErr = err
		return
	}
	ch.state, ch.stateErr = st, nil
}

// loaded returns the channel's state, or why its file could not be read.
func (ch *channel) loaded() (store.State, error) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.state, ch.stateErr
}

// snapshot returns the channel's status, with its state and the progress
// of its update if one runs.
func (ch *channel) snapshot() peerproto.SubscriptionStatus {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	cur := ch.status
	cur.TrustedSequence, cur.InstalledSequence = ch.state.Trusted, ch.state.Installed
	cur.InstalledVersion, cur.FailedSequence = ch.state.InstalledVersion, ch.state.Failed
	if ch.live != nil {
		cur.Progress = ch.live.Snapshot()
	}
	return cur
}

// updating reports whether an update of the channel is in progress.
func (ch *channel) updating() bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.live != nil
}

// startProgress makes the channel's update to m visible in GET
// /v1/status, counted by mx, until the cycle has ended.
func (ch *channel) startProgress(m *manifest.Manifest, now time.Time, mx swarm.Counter) *swarm.Progress {
	p := swarm.NewProgress(m, now, mx)
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.live = p
	return p
}

// ended records how a cycle ended and ends its update in progress.
func (ch *channel) ended(start time.Time, out peerproto.Outcome, err error) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.live = nil
	ch.status.LastCheck, ch.status.LastOutcome, ch.status.LastError = start, out, ""
	if err != nil {
		ch.status.LastError = err.Error()
	}
}

func (ch *channel) transferred(seq uint64, tr peerproto.Transfer) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.status.LastTransfer, ch.status.LastTransferSequence = &tr, seq
}

// cycle is one update cycle of a channel: the state it loaded at its start
// and changes as it goes, and the channel's log.
type cycle struct {
	*Agent
	ch  *channel
	id  manifest.ChannelID
	st  *store.State
	log *slog.Logger
}

// run brings the channel up to date once: fetch and verify its latest
// manifest, assemble the artifact, install it.
func (ch *channel) run(ctx context.Context, a *Agent) (peerproto.Outcome, error) {
	st, err := store.LoadState(a.cfg.DataDir, ch.id)
	ch.setState(st, err)
	if err != nil {
		return peerproto.Failed, err
	}
	log := a.log.With(slog.String("product", ch.id.Product), slog.String("channel", ch.id.Channel))
	c := &cycle{Agent: a, ch: ch, id: ch.id, st: &st, log: log}
	return c.run(ctx)
}

// save writes the cycle's state to the channel's state file, and publishes
// it to the channel once written.
func (c *cycle) save() error {
	if err := store.SaveState(c.cfg.DataDir, c.id, *c.st); err != nil {
		return err
	}
	c.ch.setState(*c.st, nil)
	return nil
}
