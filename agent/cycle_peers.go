package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/fleetcast/fleetcast/agent/fetch"
	"github.com/fleetcast/fleetcast/agent/store"
	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/signing"
)

// maxOffers bounds the peers asked for one newer manifest per cycle.
const maxOffers = 3

// latestFromPeers asks the peers that hold a release newer than this agent
// trusts for its signed envelope, and returns the first that verifies
// against the current root and names that release; nil if none does. The
// envelope is then handled exactly as one from the origin. A peer that
// sends a malformed or badly signed envelope is banned; one signed under a
// root this agent has not followed yet is left to the origin.
func (c *cycle) latestFromPeers(ctx context.Context) []byte {
	tried := 0
	for _, o := range c.offers(c.id, *c.st) {
		if tried == maxOffers {
			break
		}
		tried++
		key := c.id.Release(o.seq)
		c.offerTried(key, o.addr)
		env, err := fetchPeerManifest(ctx, o.fetch, key)
		if err == nil {
			err = c.checkOffer(env, key)
		}
		if err == nil {
			c.log.Info("fetched manifest from peer", slog.String("peer", o.addr), slog.Uint64("sequence", o.seq), slog.Int("bytes", len(env)))
			return env
		}
		c.log.Warn("manifest from peer refused", slog.String("peer", o.addr), slog.Uint64("sequence", o.seq), slog.String("reason", err.Error()))
		if bannable(err) {
			c.pm().Ban(o.addr, err.Error())
		}
		c.offerTried(c.id.Release(anySequence), o.addr)
	}
	return nil
}

// offers lists the peers' newer releases of a subscription, best first,
// without those already tried within poll_interval, and without any offer
// of a peer whose offer of this subscription failed within poll_interval: a
// release no peer delivers, or that this agent refuses, must not start cycle
// after cycle, nor may a peer that claims ever higher sequences. Newer is
// above what st trusts or saw fail.
func (a *Agent) offers(id manifest.ChannelID, st store.State) []peerOffer {
	all := a.pm().newest(id, max(st.Trusted, st.Failed))
	a.offersMu.Lock()
	defer a.offersMu.Unlock()
	now := a.now()
	recent := func(seq uint64, addr string) bool {
		t, ok := a.offersTried[offerKey{id.Release(seq), addr}]
		return ok && now.Sub(t) <= a.cfg.PollInterval
	}
	out := all[:0]
	for _, o := range all {
		if !recent(o.seq, o.addr) && !recent(anySequence, o.addr) {
			out = append(out, o)
		}
	}
	return out
}

// offerKey is one peer's offer of one release, or with the sequence
// anySequence, a failed offer of the product channel.
type offerKey struct {
	rel  manifest.ReleaseID
	addr string
}

// anySequence stands for every release of a product channel in an offerKey;
// no release has sequence 0.
const anySequence = 0

func (a *Agent) offerTried(key manifest.ReleaseID, addr string) {
	a.offersMu.Lock()
	defer a.offersMu.Unlock()
	now := a.now()
	for k, t := range a.offersTried {
		if now.Sub(t) > a.cfg.PollInterval {
			delete(a.offersTried, k)
		}
	}
	a.offersTried[offerKey{key, addr}] = now
}

// latestRace asks the origin for the latest manifest while it keeps
// watching the peers: an origin that is down (connect timeouts, retries)
// must not keep the agent from a release that its peers hold.
func (c *cycle) latestRace(ctx context.Context) ([]byte, *freshManifest, error) {
	type result struct {
		env   []byte
		fresh *freshManifest
		err   error
	}
	octx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan result, 1)
	stOrigin := *c.st // the origin's side changes its own copy, taken back if it wins
	oc := *c
	oc.st = &stOrigin
	go func() {
		env, fresh, err := oc.latestFromOrigin(octx)
		done <- result{env, fresh, err}
	}()
	for {
		select {
		case r := <-done:
			*c.st = stOrigin
			return r.env, r.fresh, r.err
		case <-ctx.Done():
			<-done
			return nil, nil, fmt.Errorf("%s: %w", c.id, context.Cause(ctx))
		case <-c.pm().Wake():
		}
		if len(c.offers(c.id, *c.st)) == 0 {
			continue
		}
		if env := c.latestFromPeers(ctx); env != nil {
			cancel()
			<-done
			c.log.Info("took the manifest from a peer while the origin did not answer")
			return env, nil, nil
		}
	}
}

// checkOffer verifies a peer's envelope and that it is the release offered.
func (a *Agent) checkOffer(env []byte, key manifest.ReleaseID) error {
	v, err := manifest.Verify(env, a.currentRoot(), a.now())
	if err != nil {
		return err
	}
	if v.Product != key.Product || v.Channel != key.Channel || v.Sequence != key.Sequence {
		return fmt.Errorf("peer offered %s but sent %s/%s/%d: %w", key, v.Product, v.Channel, v.Sequence, manifest.ErrInvalid)
	}
	return nil
}

// bannable: the peer sent something no honest agent holds. A trusted key's
// signature that fails means the bytes were altered after signing, whatever
// else is wrong; since that error also matches signing.ErrThreshold, it is
// judged first. Valid signatures by too few or unknown keys may mean a root
// rotation this agent has not followed; an expired manifest, a peer that
// kept an old release; an expired root is this agent's own.
func bannable(err error) bool {
	if errors.Is(err, signing.ErrBadSignature) {
		return true
	}
	for _, e := range []error{signing.ErrUnknownKey, signing.ErrThreshold, manifest.ErrExpired, signing.ErrRootExpired} {
		if errors.Is(err, e) {
			return false
		}
	}
	return errors.Is(err, signing.ErrMalformed) || errors.Is(err, signing.ErrTooLarge) ||
		errors.Is(err, signing.ErrPayloadType) || errors.Is(err, manifest.ErrInvalid) || errors.Is(err, fetch.ErrTooLong)
}
