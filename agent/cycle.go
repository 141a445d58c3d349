package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"time"

	"github.com/fleetcast/fleetcast/agent/fetch"
	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/agent/store"
	"github.com/fleetcast/fleetcast/agent/swarm"
	"github.com/fleetcast/fleetcast/installers"
	"github.com/fleetcast/fleetcast/internal/clip"
	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/signing"
)

// cycle brings one subscription up to date: fetch and verify the channel's
// latest manifest, assemble its artifact, install it.
func (a *Agent) cycle(ctx context.Context, sub manifest.ChannelID) (peerproto.Outcome, error) {
	log := a.log.With(slog.String("product", sub.Product), slog.String("channel", sub.Channel))
	st, err := store.LoadState(a.cfg.DataDir, sub.Product, sub.Channel)
	if err != nil {
		return peerproto.Failed, err
	}
	env, fresh, err := a.latest(ctx, sub, &st, log)
	if err != nil || env == nil {
		if err != nil {
			return peerproto.Failed, err
		}
		return peerproto.UpToDate, nil
	}
	v, err := a.verify(ctx, sub, env, fresh, log)
	if err != nil {
		return peerproto.Failed, err
	}
	switch {
	case v.Sequence < st.Trusted:
		return peerproto.Failed, manifest.CheckSequence(v.Manifest, st.Trusted)
	case v.Sequence == st.Installed:
		a.upToDate(sub, &st, v, log)
		return peerproto.UpToDate, a.saveValidators(sub, &st, fresh)
	case v.Sequence == st.Failed:
		log.Warn("latest release failed its health check, or was refused by its installer, before; not tried again: waiting for a newer one",
			slog.Uint64("sequence", v.Sequence), slog.String("version", v.Version), slog.String("reason", st.FailedReason))
		return peerproto.KnownBad, a.saveValidators(sub, &st, fresh)
	}
	if err := a.cfg.Allow(v.Install); err != nil {
		return peerproto.Failed, fmt.Errorf("%s/%s sequence %d (version %s): %w", sub.Product, sub.Channel, v.Sequence, v.Version, err)
	}
	if err := a.trust(sub, &st, v, env, log); err != nil {
		return peerproto.Failed, err
	}
	return a.update(ctx, sub, &st, v, fresh, log)
}

// upToDate logs that the installed sequence is the latest, or, when the
// manifest names another release than the one installed under that
// sequence, that it is ignored: a sequence is installed once, and the
// publisher never signs two releases with one sequence.
func (a *Agent) upToDate(sub manifest.ChannelID, st *store.State, v *manifest.Verified, log *slog.Logger) {
	differs := a.installedDiffers(sub, st, v)
	if differs == "" {
		log.Info("up to date", slog.Uint64("sequence", v.Sequence), slog.String("version", v.Version))
		return
	}
	log.Warn("manifest for the installed sequence names another release than the one installed; a sequence is installed once: ignored",
		slog.Uint64("sequence", v.Sequence), slog.String("version", v.Version),
		slog.String("installed_version", st.InstalledVersion), slog.String("differs", differs))
}

// installedDiffers says in what v differs from the release installed under
// its sequence: "version", "artifact", "install" (its instructions), or ""
// for none. A manifest signed again (another expiry, another signature) of
// the same release differs in none.
func (a *Agent) installedDiffers(sub manifest.ChannelID, st *store.State, v *manifest.Verified) string {
	if v.Version != st.InstalledVersion {
		return "version"
	}
	m, err := store.LoadManifest(a.store.ReleaseDir(sub.Product, sub.Channel, st.Installed))
	switch {
	case err != nil:
		return "" // no stored manifest to compare with; the version matches
	case m.Version != v.Version:
		return "version"
	case m.Artifact != v.Artifact:
		return "artifact"
	case !reflect.DeepEqual(m.Install, v.Install):
		return "install"
	}
	return ""
}

// freshManifest is a manifest response to remember once it is handled.
type freshManifest struct {
	etag, lastModified string
}

// latest fetches the channel's latest manifest envelope: from a peer that
// holds a newer release than this agent trusts, else from the origin. It
// returns nil and no error when the origin says it is unchanged, the trusted
// manifest still verifies (it has not expired, nor has the root), and
// everything it named was handled; when the trusted release is not installed
// yet (an interrupted cycle), it returns the stored envelope.
func (a *Agent) latest(ctx context.Context, sub manifest.ChannelID, st *store.State, log *slog.Logger) ([]byte, *freshManifest, error) {
	if a.pm() == nil {
		return a.latestFromOrigin(ctx, sub, st, log)
	}
	if env := a.latestFromPeers(ctx, sub, st, log); env != nil {
		return env, nil, nil
	}
	return a.latestRace(ctx, sub, st, log)
}

// latestFromOrigin is latest without peers: a conditional GET. A 304 is
// believed only while the trusted manifest it stands for still verifies now:
// otherwise an origin (or, over http, anyone on the path) could keep the
// agent on an expired release forever without an error. When it does not,
// the validators are dropped and the manifest is fetched whole, so the
// outcome is that of a fresh response.
func (a *Agent) latestFromOrigin(ctx context.Context, sub manifest.ChannelID, st *store.State, log *slog.Logger) ([]byte, *freshManifest, error) {
	resp, err := a.origin.Manifest(ctx, sub.Product, sub.Channel, st.ETag, st.LastModified)
	if errors.Is(err, fetch.ErrNotModified) {
		env, stale := a.trustedEnvelope(sub, st)
		if stale == nil {
			if st.Trusted == st.Installed || st.Trusted == st.Failed {
				log.Debug("manifest not modified", slog.Uint64("installed", st.Installed))
				return nil, nil, nil
			}
			return env, nil, nil
		}
		log.Warn("origin says the manifest is unchanged, but the trusted one no longer verifies; fetching it whole",
			slog.Uint64("trusted", st.Trusted), slog.String("reason", stale.Error()))
		if st.ETag != "" || st.LastModified != "" {
			st.ETag, st.LastModified = "", ""
			if err := store.SaveState(a.cfg.DataDir, sub.Product, sub.Channel, *st); err != nil {
				return nil, nil, err
			}
		}
		resp, err = a.origin.Manifest(ctx, sub.Product, sub.Channel, "", "")
		if errors.Is(err, fetch.ErrNotModified) {
			return nil, nil, fmt.Errorf("%s/%s: origin answered 304 Not Modified to a request without validators, for a trusted manifest that no longer verifies: %w",
				sub.Product, sub.Channel, stale)
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s/%s: %w", sub.Product, sub.Channel, err)
	}
	log.Info("fetched manifest from origin", slog.Int("bytes", len(resp.Body)), slog.String("etag", clip.String(resp.ETag, 64)))
	return resp.Body, a.validators(resp, log), nil
}

// trustedEnvelope reads the stored envelope of the trusted sequence and
// verifies it against the current root now, as a fresh response would be;
// the error says why it is no longer current (missing, expired, root
// expired, no longer signed by the root's keys).
func (a *Agent) trustedEnvelope(sub manifest.ChannelID, st *store.State) ([]byte, error) {
	if st.Trusted == 0 {
		return nil, errors.New("no trusted manifest")
	}
	dir := a.store.ReleaseDir(sub.Product, sub.Channel, st.Trusted)
	env, err := store.ReadLimited(filepath.Join(dir, store.ManifestFile), signing.MaxEnvelopeSize)
	if err != nil {
		return nil, fmt.Errorf("trusted manifest, sequence %d: %w", st.Trusted, err)
	}
	v, err := manifest.Verify(env, a.currentRoot(), a.now())
	if err != nil {
		return nil, err
	}
	if v.Product != sub.Product || v.Channel != sub.Channel || v.Sequence != st.Trusted {
		return nil, fmt.Errorf("stored manifest of sequence %d is %s/%s sequence %d: %w",
			st.Trusted, v.Product, v.Channel, v.Sequence, manifest.ErrInvalid)
	}
	return env, nil
}

// validators returns the response's validators to remember, without those
// longer than maxValidator.
func (a *Agent) validators(resp *fetch.ManifestResponse, log *slog.Logger) *freshManifest {
	f := &freshManifest{etag: resp.ETag, lastModified: resp.LastModified}
	if len(f.etag) > store.MaxValidator {
		log.Warn("origin's ETag not kept", slog.Int("bytes", len(f.etag)), slog.Int("limit", store.MaxValidator))
		f.etag = ""
	}
	if len(f.lastModified) > store.MaxValidator {
		log.Warn("origin's Last-Modified not kept", slog.Int("bytes", len(f.lastModified)), slog.Int("limit", store.MaxValidator))
		f.lastModified = ""
	}
	return f
}

// verify follows the root chain (for a freshly fetched manifest) and checks
// the envelope: signatures, threshold, expiry, and that it is the
// subscription's product and channel.
func (a *Agent) verify(ctx context.Context, sub manifest.ChannelID, env []byte, fresh *freshManifest, log *slog.Logger) (*manifest.Verified, error) {
	root := a.currentRoot()
	if fresh != nil {
		var err error
		if root, err = a.followRoots(ctx, log); err != nil {
			return nil, err
		}
	}
	v, err := manifest.Verify(env, root, a.now())
	if err != nil {
		log.Error("manifest refused", slog.String("reason", err.Error()))
		return nil, fmt.Errorf("%s/%s: %w", sub.Product, sub.Channel, err)
	}
	if v.Product != sub.Product || v.Channel != sub.Channel {
		return nil, fmt.Errorf("%s/%s: origin served a manifest for %s/%s: %w; not trusted",
			sub.Product, sub.Channel, v.Product, v.Channel, manifest.ErrInvalid)
	}
	log.Info("manifest verified", slog.Uint64("sequence", v.Sequence), slog.String("version", v.Version),
		slog.Uint64("root_version", root.Version), slog.Any("signed_by", v.SignedBy))
	return v, nil
}

// followRoots rotates the agent's root through any newer versions on the
// origin and keeps the newest.
func (a *Agent) followRoots(ctx context.Context, log *slog.Logger) (*signing.Root, error) {
	a.rootMu.Lock()
	defer a.rootMu.Unlock()
	fetched := make(map[uint64][]byte)
	next, err := signing.FollowChain(ctx, a.root, func(ctx context.Context, v uint64) ([]byte, error) {
		b, err := a.origin.Root(ctx, v)
		if err == nil {
			fetched[v] = b
		}
		return b, err
	})
	if err != nil {
		log.Error("root rotation refused", slog.String("reason", err.Error()))
		return nil, fmt.Errorf("follow root chain from version %d: %w", a.root.Version, err)
	}
	if next.Version != a.root.Version {
		if err := store.SaveRoot(a.cfg.DataDir, fetched[next.Version]); err != nil {
			return nil, err
		}
		log.Info("rotated trust root", slog.Uint64("from", a.root.Version), slog.Uint64("to", next.Version),
			slog.String("keys", next.KeyIDs()), slog.Int("threshold", next.Threshold))
		a.root = next
	}
	return a.root, nil
}

func (a *Agent) currentRoot() *signing.Root {
	a.rootMu.Lock()
	defer a.rootMu.Unlock()
	return a.root
}

// trust records a newly verified sequence as the highest trusted, with its
// envelope in the store, before anything is fetched for it: from here on a
// restart cannot be talked into an older release.
func (a *Agent) trust(sub manifest.ChannelID, st *store.State, v *manifest.Verified, env []byte, log *slog.Logger) error {
	dir := a.store.ReleaseDir(sub.Product, sub.Channel, v.Sequence)
	if _, err := os.Stat(filepath.Join(dir, store.ManifestFile)); err != nil || v.Sequence > st.Trusted {
		if err := a.store.SaveManifest(sub.Product, sub.Channel, v.Sequence, env); err != nil {
			return err
		}
	}
	if v.Sequence > st.Trusted {
		log.Info("new release trusted", slog.Uint64("sequence", v.Sequence), slog.Uint64("previous_trusted", st.Trusted))
		st.Trusted = v.Sequence
		st.ClearRetry()
		return store.SaveState(a.cfg.DataDir, sub.Product, sub.Channel, *st)
	}
	return nil
}

// update assembles and installs a trusted release.
func (a *Agent) update(ctx context.Context, sub manifest.ChannelID, st *store.State, v *manifest.Verified, fresh *freshManifest, log *slog.Logger) (peerproto.Outcome, error) {
	log = log.With(slog.Uint64("sequence", v.Sequence), slog.String("version", v.Version))
	if st.Waiting(v.Sequence, a.now()) {
		return a.deferred(sub, st, v, fresh, log)
	}
	dir := a.store.ReleaseDir(sub.Product, sub.Channel, v.Sequence)
	prog := a.startProgress(sub, v.Manifest)
	if !a.store.Complete(sub.Product, sub.Channel, v.Sequence) {
		start := time.Now()
		log.Info("assembling release", slog.Int64("bytes", v.Artifact.Size), slog.Int("chunks", len(v.Chunks)))
		var sw *swarm.Config
		if a.pm() != nil {
			sw = a.pm().swarm()
		}
		tr, err := swarm.Assemble(ctx, a.store, v.Manifest, dir, a.origin, a.cfg.OriginConnections, sw, prog, log)
		tr.Seconds = time.Since(start).Seconds()
		a.recordTransfer(sub, v.Sequence, tr)
		if err != nil {
			log.Error("assembly failed", slog.String("reason", err.Error()))
			return peerproto.Failed, fmt.Errorf("%s/%s sequence %d: %w", sub.Product, sub.Channel, v.Sequence, err)
		}
		a.metrics.fetchTime(sub, tr.Seconds)
		log.Info("artifact verified", slog.Int64("origin_bytes", tr.Origin), slog.Int64("origin_chunks", tr.OriginChunks),
			slog.Int64("peer_bytes", tr.Peer), slog.Int64("peer_chunks", tr.PeerChunks), slog.Any("origin_reasons", tr.OriginReasons),
			slog.Int64("reused_local_bytes", tr.ReusedLocal), slog.Int64("resumed_bytes", tr.Resumed),
			slog.Int64("duplicate_bytes", tr.Duplicate), slog.Float64("seconds", tr.Seconds))
	}
	prog.StartInstall()
	installStart := time.Now()
	res := a.install(ctx, sub, st, v, log)
	a.metrics.installTime(sub, time.Since(installStart).Seconds())
	if res == nil {
		st.Installed, st.InstalledVersion = v.Sequence, v.Version
		st.ClearRetry()
		a.rememberValidators(st, fresh)
		if err := store.SaveState(a.cfg.DataDir, sub.Product, sub.Channel, *st); err != nil {
			return peerproto.Failed, err
		}
		if err := a.store.Remove(sub.Product, sub.Channel, v.Sequence); err != nil {
			log.Warn("could not remove old releases from the store", slog.String("reason", err.Error()))
		}
		log.Info("release installed")
		return peerproto.Updated, nil
	}
	return a.installFailed(sub, st, v, fresh, res, log)
}

// installFailure is what an installer's error means for the release.
type installFailure int

const (
	failedOther        installFailure = iota // anything else: tried again next cycle
	failedHealth                             // ErrHealthCheck: a bad release, rolled back; never tried again
	failedRefused                            // ErrUnsafeArchive: a bad release, nothing switched; never tried again
	failedNoSpace                            // ErrNoSpace: tried again after a backoff
	failedUnsafeTarget                       // ErrUnsafeTarget: not the release's fault; tried again next cycle
)

// classifyInstall says what an installer's error means. A verdict on the
// release comes first: a bad release stays bad whatever else went wrong.
func classifyInstall(err error) installFailure {
	switch {
	case errors.Is(err, installers.ErrHealthCheck):
		return failedHealth
	case errors.Is(err, installers.ErrUnsafeArchive):
		return failedRefused
	case errors.Is(err, installers.ErrNoSpace):
		return failedNoSpace
	case errors.Is(err, installers.ErrUnsafeTarget):
		return failedUnsafeTarget
	}
	return failedOther
}

// installFailed records what an installer's error means for the release
// and returns the cycle's outcome and error, which says whether and when
// the release is tried again.
func (a *Agent) installFailed(sub manifest.ChannelID, st *store.State, v *manifest.Verified, fresh *freshManifest, res error, log *slog.Logger) (peerproto.Outcome, error) {
	release := fmt.Sprintf("%s/%s sequence %d", sub.Product, sub.Channel, v.Sequence)
	switch classifyInstall(res) {
	case failedHealth:
		log.Error("release failed its health check; not tried again", slog.String("reason", res.Error()))
		st.Failed, st.FailedReason = v.Sequence, res.Error()
		return peerproto.HealthFailed, a.saveFailure(sub, st, fresh, fmt.Errorf("%s: %w; it will not be tried again", release, res))
	case failedRefused:
		cause := unswitched(res)
		log.Error("release refused by its installer, nothing was switched; not tried again until a newer sequence", slog.String("reason", cause.Error()))
		st.Failed, st.FailedReason = v.Sequence, cause.Error()
		return peerproto.Refused, a.saveFailure(sub, st, fresh, fmt.Errorf("%s (version %s) refused by its installer, nothing was switched: %w; not tried again until a newer sequence",
			release, v.Version, cause))
	case failedNoSpace:
		cause := unswitched(res)
		st.NoSpace(v.Sequence, cause.Error(), a.now(), a.cfg.PollInterval)
		log.Error("release does not fit on its target's file system; what was written is removed; backing off",
			slog.Time("retry_after", st.RetryAfter), slog.Int("attempts", st.RetryCount), slog.String("reason", cause.Error()))
		return peerproto.Failed, a.saveFailure(sub, st, fresh, fmt.Errorf("%s: %w; attempt %d, not tried again before %s: free space on the target's file system, or wait for a newer release",
			release, cause, st.RetryCount, st.RetryAfter.Format(time.RFC3339)))
	case failedUnsafeTarget:
		cause := unswitched(res)
		log.Error("install target is not as fleetcast made it: repair the path the reason names (or move it away); the same release is installed on the next cycle after that",
			slog.String("target", v.Install.Target), slog.String("reason", cause.Error()))
		return peerproto.Failed, fmt.Errorf("%s: %w; nothing was switched; not a verdict on the release: it is tried again every cycle, and installs once that path is repaired", release, cause)
	}
	log.Error("install failed", slog.String("reason", res.Error()))
	return peerproto.Failed, fmt.Errorf("%s: %w", release, res)
}

// unswitched is the installer's reason for an install that switched
// nothing, without the "(not rolled back)" of its step error: there was
// nothing to roll back.
func unswitched(err error) error {
	var ie *installers.Error
	if errors.As(err, &ie) && !ie.RolledBack && ie.Err != nil {
		return ie.Err
	}
	return err
}

// saveFailure saves st with the manifest's validators (the manifest was
// handled: what follows is decided by st) and returns err, joined with
// any error saving it.
func (a *Agent) saveFailure(sub manifest.ChannelID, st *store.State, fresh *freshManifest, err error) error {
	a.rememberValidators(st, fresh)
	if serr := store.SaveState(a.cfg.DataDir, sub.Product, sub.Channel, *st); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}

// deferred is the cycle of a release that did not fit on its target's file
// system, while it waits for its backoff: it installs nothing.
func (a *Agent) deferred(sub manifest.ChannelID, st *store.State, v *manifest.Verified, fresh *freshManifest, log *slog.Logger) (peerproto.Outcome, error) {
	log.Info("waiting before retrying a release that did not fit on its target's file system",
		slog.Time("retry_after", st.RetryAfter), slog.Int("attempts", st.RetryCount), slog.String("reason", st.RetryReason))
	return peerproto.Deferred, a.saveFailure(sub, st, fresh, fmt.Errorf("%s/%s sequence %d (version %s): %w (attempts so far: %d; the last: %s); not tried again before %s: free space on it, or wait for a newer release",
		sub.Product, sub.Channel, v.Sequence, v.Version, installers.ErrNoSpace, st.RetryCount, st.RetryReason, st.RetryAfter.Format(time.RFC3339)))
}

// install hands the verified artifact to its installer. It runs to its end
// even when ctx is cancelled, so that a shutdown never cuts a command or a
// health check in half (each has its own timeout).
func (a *Agent) install(ctx context.Context, sub manifest.ChannelID, st *store.State, v *manifest.Verified, log *slog.Logger) error {
	stateDir := store.InstallerDir(a.cfg.DataDir, sub.Product, sub.Channel)
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}
	req := &installers.Request{
		Product: sub.Product, Channel: sub.Channel,
		New: installers.Release{Sequence: v.Sequence, Version: v.Version,
			Artifact: a.store.ArtifactPath(sub.Product, sub.Channel, v.Sequence), Install: v.Install},
		Previous:       a.previous(sub, st, log),
		StateDir:       stateDir,
		CommandTimeout: a.cfg.CommandTimeout,
		HealthTimeout:  a.cfg.HealthTimeout,
		KeepReleases:   a.cfg.KeepReleases,
		AllowedTargets: a.cfg.AllowedTargets,
		Log:            log,
	}
	log.Info("installing", slog.String("installer", v.Install.Installer), slog.String("target", v.Install.Target))
	_, err := runInstaller(context.WithoutCancel(ctx), req)
	return err
}

// runInstaller is installers.Install; tests replace it to make an installer
// fail as a real one cannot be made to on every machine (no space, a
// target tampered with).
var runInstaller = installers.Install

// previous is the installed release, to roll back to, if the store has it.
func (a *Agent) previous(sub manifest.ChannelID, st *store.State, log *slog.Logger) *installers.Release {
	if st.Installed == 0 || !a.store.Complete(sub.Product, sub.Channel, st.Installed) {
		return nil
	}
	m, err := store.LoadManifest(a.store.ReleaseDir(sub.Product, sub.Channel, st.Installed))
	if err != nil {
		log.Warn("installed release's manifest unreadable; no rollback target", slog.String("reason", err.Error()))
		return nil
	}
	return &installers.Release{Sequence: st.Installed, Version: m.Version,
		Artifact: a.store.ArtifactPath(sub.Product, sub.Channel, st.Installed), Install: m.Install}
}

func (a *Agent) rememberValidators(st *store.State, fresh *freshManifest) {
	if fresh != nil {
		st.ETag, st.LastModified = fresh.etag, fresh.lastModified
	}
}

// saveValidators remembers the manifest response's validators once the
// manifest it named is handled, so the next poll is a cheap 304.
func (a *Agent) saveValidators(sub manifest.ChannelID, st *store.State, fresh *freshManifest) error {
	if fresh == nil || (fresh.etag == st.ETag && fresh.lastModified == st.LastModified) {
		return nil
	}
	a.rememberValidators(st, fresh)
	return store.SaveState(a.cfg.DataDir, sub.Product, sub.Channel, *st)
}
