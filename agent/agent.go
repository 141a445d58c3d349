// Package agent keeps a machine's subscribed products up to date: it fetches
// each channel's signed manifest from the origin mirror, verifies it against
// the pinned trust root (following rotations), assembles the artifact from
// verified chunks in a content-addressed store under the data directory
// (resuming interrupted downloads and reusing the chunks of the installed
// release), and hands it to an installer, with health check and rollback.
// The data directory's layout is specified in docs/SPEC.md ("Agent data
// directory"); the configuration in docs/CONFIG.md.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetcast/fleetcast/agent/config"
	"github.com/fleetcast/fleetcast/agent/fetch"
	"github.com/fleetcast/fleetcast/agent/fleettls"
	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/agent/store"
	"github.com/fleetcast/fleetcast/agent/swarm"
	"github.com/fleetcast/fleetcast/signing"
)

// Agent keeps a machine's subscriptions up to date. Create it with New, then
// call Once or Run; Close releases the data directory.
type Agent struct {
	cfg    *config.Config
	log    *slog.Logger
	origin *fetch.Client
	store  *store.Store
	clock  swarm.Clock // the time for signatures, expiry and backoff, the peer manager and the scheduler
	lock   *os.File

	rootMu sync.Mutex
	root   *signing.Root

	id      string                      // this agent's id (data_dir/agent-id)
	fleet   *fleettls.Fleet             // open, or closed by fleet_secret_file
	peerMgr atomic.Pointer[peerManager] // set by Run when listen is set; nil: origin only (read it with pm)
	srv     *peerServer

	offersMu    sync.Mutex
	offersTried map[offerKey]time.Time // peers' newer releases asked for, and when

	channels []*channel // one per subscription, in the configuration's order

	metrics *metrics
}

// New prepares an agent with a Config built in code (tests): it validates a
// normalized copy of cfg (config.Config.Normalized; cfg itself is not
// changed) and opens the agent with it, as NewFromFile does.
//
// A configuration is validated once on its way to a running agent, where it
// becomes a Config: by config.Load for a file (NewFromFile), by New for one
// built in code. open, which both call, trusts its Config.
func New(cfg *config.Config, log *slog.Logger) (*Agent, error) {
	c := cfg.Normalized()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return open(&c, log)
}

// NewFromFile prepares an agent with the configuration file at path, which
// config.Load reads, normalizes and validates (the agent does not check it
// again). It logs the configuration's Warnings, then opens the agent: it
// creates the data directory, takes its lock (one agent per data directory),
// and loads the trust root.
func NewFromFile(path string, log *slog.Logger) (*Agent, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	for _, w := range cfg.Warnings() {
		log.Warn("configuration allows more than it may mean to", slog.String("config", path), slog.String("warning", w))
	}
	return open(cfg, log)
}

// open prepares an agent with cfg, a normalized and validated Config: it
// creates the data directory, takes its lock (one agent per data
// directory), and loads the trust root.
func open(cfg *config.Config, log *slog.Logger) (*Agent, error) {
	base, err := url.Parse(cfg.Origin)
	if err != nil {
		return nil, fmt.Errorf("config: origin: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	lock, err := store.Lock(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	root, err := store.LoadRoot(cfg.Root, cfg.DataDir)
	if err != nil {
		lock.Close()
		return nil, err
	}
	id, err := store.LoadAgentID(cfg.DataDir)
	if err != nil {
		lock.Close()
		return nil, err
	}
	fleet, err := fleettls.Load(cfg.FleetSecretFile)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("config: fleet_secret_file: %w", err)
	}
	p := fetch.Policy{Timeout: cfg.RequestTimeout, MinRate: cfg.MinThroughput, Window: cfg.ThroughputWindow,
		Retries: cfg.Retries, Backoff: cfg.RetryBackoff, BackoffMax: cfg.RetryBackoffMax}
	a := &Agent{
		cfg: cfg, log: log, clock: swarm.SystemClock{}, lock: lock, root: root, id: id, fleet: fleet,
		store:       store.Open(filepath.Join(cfg.DataDir, store.ReleasesDir)),
		offersTried: make(map[offerKey]time.Time),
	}
	for _, s := range cfg.Subscriptions {
		a.channels = append(a.channels, newChannel(cfg.DataDir, s))
	}
	a.srv = newPeerServer(cfg, id, fleet, a.store.Held, log)
	a.metrics = newMetrics(cfg.Subscriptions, &agentCollector{channels: a.channels, status: a.Status})
	a.origin = fetch.New(base, p, fetch.Options{Conns: cfg.OriginConnections,
		Rejected: func() { a.metrics.ChunkRejected(swarm.SourceOrigin) }}, log)
	log.Info("agent ready", slog.String("agent_id", id), slog.String("fleet_id", fleet.ID()),
		slog.String("data_dir", cfg.DataDir), slog.String("origin", cfg.Origin),
		slog.Uint64("root_version", root.Version), slog.Int("subscriptions", len(cfg.Subscriptions)))
	return a, nil
}

// Close releases the data directory.
func (a *Agent) Close() error { return a.lock.Close() }

// Once runs one update cycle for every subscription and returns the joined
// errors of those that failed (nil when each is up to date or updated).
func (a *Agent) Once(ctx context.Context) error {
	_, err := a.once(ctx)
	return err
}

// once runs one cycle per subscription. retrySoon reports that a cycle
// failed in a way worth retrying before poll_interval: not one deferred
// by its own backoff (a release that did not fit), which waits for its
// retry_after whatever the poll does.
func (a *Agent) once(ctx context.Context) (retrySoon bool, err error) {
	var errs []error
	for _, ch := range a.channels {
		out, err := a.runCycle(ctx, ch)
		if err != nil {
			errs = append(errs, err)
			retrySoon = retrySoon || out != peerproto.Deferred
		}
	}
	return retrySoon, errors.Join(errs...)
}

func (a *Agent) runCycle(ctx context.Context, ch *channel) (peerproto.Outcome, error) {
	start := a.now()
	out, err := ch.run(ctx, a)
	a.metrics.cycle(ch.id, out)
	ch.ended(start, out, err)
	if err != nil && out != peerproto.Deferred { // a deferred cycle logged what it waits for
		a.log.Error("update cycle failed", slog.String("product", ch.id.Product), slog.String("channel", ch.id.Channel),
			slog.String("outcome", string(out)), slog.String("reason", err.Error()))
	}
	return out, err
}

// Run serves the status and peer API, finds peers and follows them (when
// listen is set), and runs update cycles every poll_interval, with jitter,
// or at once when a peer holds a newer release, until ctx is cancelled; it
// returns nil then. A failed cycle is retried sooner, with backoff.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if a.cfg.Listen != "" {
		stop, err := a.serve(ctx)
		if err != nil {
			return err
		}
		defer stop()
		a.settle(ctx)
	}
	failures := 0
	for {
		if retrySoon, _ := a.once(ctx); retrySoon && ctx.Err() == nil {
			failures++
		} else {
			failures = 0
		}
		wait := a.nextPoll(failures)
		a.log.Debug("next poll", slog.Duration("in", wait))
		news, stopNews := context.WithCancel(ctx)
		poll, stopPoll := a.clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			stopNews()
			stopPoll()
			a.log.Info("agent stopping")
			return nil
		case <-poll:
		case <-a.peerNews(news):
		}
		stopNews()
		stopPoll()
	}
}

// nextPoll is poll_interval ± poll_jitter; after failures, an exponential
// backoff from retry_backoff if that is sooner.
func (a *Agent) nextPoll(failures int) time.Duration {
	d := a.cfg.PollInterval
	if failures > 0 {
		d = min(d, max(a.cfg.RetryBackoff, time.Second)<<min(failures+2, 20))
	}
	j := a.cfg.PollJitter
	return time.Duration(float64(d) * (1 - j + 2*j*rand.Float64()))
}

// pm is the peer manager, or nil when the agent fetches from the origin
// only (no listen address, or Run has not started it yet).
func (a *Agent) pm() *peerManager { return a.peerMgr.Load() }

// now is the agent's clock's time.
func (a *Agent) now() time.Time { return a.clock.Now() }

// after returns a channel that receives once d has passed on the agent's
// clock. Its timer is not stopped early: for short waits only.
func (a *Agent) after(d time.Duration) <-chan time.Time {
	c, _ := a.clock.NewTimer(d)
	return c
}
