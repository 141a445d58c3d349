package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

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
func (a *Agent) latestFromPeers(ctx context.Context, sub Subscription, st *subState, log *slog.Logger) []byte {
	offers := a.pm.newest(sub.Product, sub.Channel, max(st.Trusted, st.Failed))
	for i, o := range offers {
		if i == maxOffers {
			break
		}
		key := relKey{sub.Product, sub.Channel, o.seq}
		env, err := o.fetch.fetchPeerManifest(ctx, key)
		if err == nil {
			err = a.checkOffer(env, key)
		}
		if err == nil {
			log.Info("fetched manifest from peer", slog.String("peer", o.addr), slog.Uint64("sequence", o.seq), slog.Int("bytes", len(env)))
			return env
		}
		log.Warn("manifest from peer refused", slog.String("peer", o.addr), slog.Uint64("sequence", o.seq), slog.String("reason", err.Error()))
		if bannable(err) {
			a.pm.ban(o.addr, err.Error())
		}
	}
	return nil
}

// checkOffer verifies a peer's envelope and that it is the release offered.
func (a *Agent) checkOffer(env []byte, key relKey) error {
	v, err := manifest.Verify(env, a.currentRoot(), a.now())
	if err != nil {
		return err
	}
	if v.Product != key.product || v.Channel != key.channel || v.Sequence != key.seq {
		return fmt.Errorf("peer offered %s but sent %s/%s/%d: %w", key, v.Product, v.Channel, v.Sequence, manifest.ErrInvalid)
	}
	return nil
}

// bannable: the peer sent something no honest agent holds. An unknown key
// or too few signatures may mean a root rotation this agent has not seen;
// an expired manifest, a peer that kept an old release.
func bannable(err error) bool {
	for _, e := range []error{signing.ErrUnknownKey, signing.ErrThreshold, manifest.ErrExpired, signing.ErrRootExpired} {
		if errors.Is(err, e) {
			return false
		}
	}
	return errors.Is(err, signing.ErrBadSignature) || errors.Is(err, signing.ErrMalformed) ||
		errors.Is(err, signing.ErrTooLarge) || errors.Is(err, signing.ErrPayloadType) ||
		errors.Is(err, manifest.ErrInvalid) || errors.Is(err, errTooLong)
}
