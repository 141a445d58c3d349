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

// run brings the channel up to date: fetch and verify its latest manifest,
// assemble the artifact, install it.
func (c *cycle) run(ctx context.Context) (peerproto.Outcome, error) {
	env, fresh, err := c.latest(ctx)
	if err != nil || env == nil {
		if err != nil {
			return peerproto.Failed, err
		}
		return peerproto.UpToDate, nil
	}
	v, err := c.verify(ctx, env, fresh)
	if err != nil {
		return peerproto.Failed, err
	}
	switch {
	case v.Sequence < c.st.Trusted:
		return peerproto.Failed, manifest.CheckSequence(v.Manifest, c.st.Trusted)
	case v.Sequence == c.st.Installed:
		c.upToDate(v)
		return peerproto.UpToDate, c.saveValidators(fresh)
	case v.Sequence == c.st.Failed:
		c.log.Warn("latest release failed its health check, or was refused by its installer, before; not tried again: waiting for a newer one",
			slog.Uint64("sequence", v.Sequence), slog.String("version", v.Version), slog.String("reason", c.st.FailedReason))
		return peerproto.KnownBad, c.saveValidators(fresh)
	}
	if err := c.cfg.Allow(v.Install); err != nil {
		return peerproto.Failed, fmt.Errorf("%s sequence %d (version %s): %w", c.id, v.Sequence, v.Version, err)
	}
	if err := c.trust(v, env); err != nil {
		return peerproto.Failed, err
	}
	return c.update(ctx, v, fresh)
}

// upToDate logs that the installed sequence is the latest, or, when the
// manifest names another release than the one installed under that
// sequence, that it is ignored: a sequence is installed once, and the
// publisher never signs two releases with one sequence.
func (c *cycle) upToDate(v *manifest.Verified) {
	differs := c.installedDiffers(v)
	if differs == "" {
		c.log.Info("up to date", slog.Uint64("sequence", v.Sequence), slog.String("version", v.Version))
		return
	}
	c.log.Warn("manifest for the installed sequence names another release than the one installed; a sequence is installed once: ignored",
		slog.Uint64("sequence", v.Sequence), slog.String("version", v.Version),
		slog.String("installed_version", c.st.InstalledVersion), slog.String("differs", differs))
}

// installedDiffers says in what v differs from the release installed under
// its sequence: "version", "artifact", "install" (its instructions), or ""
// for none. A manifest signed again (another expiry, another signature) of
// the same release differs in none.
func (c *cycle) installedDiffers(v *manifest.Verified) string {
	if v.Version != c.st.InstalledVersion {
		return "version"
	}
	m, err := store.LoadManifest(c.store.ReleaseDir(c.id.Release(c.st.Installed)))
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
func (c *cycle) latest(ctx context.Context) ([]byte, *freshManifest, error) {
	if c.pm() == nil {
		return c.latestFromOrigin(ctx)
	}
	if env := c.latestFromPeers(ctx); env != nil {
		return env, nil, nil
	}
	return c.latestRace(ctx)
}

// latestFromOrigin is latest without peers: a conditional GET. A 304 is
// believed only while the trusted manifest it stands for still verifies now:
// otherwise an origin (or, over http, anyone on the path) could keep the
// agent on an expired release forever without an error. When it does not,
// the validators are dropped and the manifest is fetched whole, so the
// outcome is that of a fresh response.
func (c *cycle) latestFromOrigin(ctx context.Context) ([]byte, *freshManifest, error) {
	resp, err := c.origin.Manifest(ctx, c.id, c.st.ETag, c.st.LastModified)
	if errors.Is(err, fetch.ErrNotModified) {
		env, stale := c.trustedEnvelope()
		if stale == nil {
			if c.st.Trusted == c.st.Installed || c.st.Trusted == c.st.Failed {
				c.log.Debug("manifest not modified", slog.Uint64("installed", c.st.Installed))
				return nil, nil, nil
			}
			return env, nil, nil
		}
		c.log.Warn("origin says the manifest is unchanged, but the trusted one no longer verifies; fetching it whole",
			slog.Uint64("trusted", c.st.Trusted), slog.String("reason", stale.Error()))
		if c.st.ETag != "" || c.st.LastModified != "" {
			c.st.ETag, c.st.LastModified = "", ""
			if err := c.save(); err != nil {
				return nil, nil, err
			}
		}
		resp, err = c.origin.Manifest(ctx, c.id, "", "")
		if errors.Is(err, fetch.ErrNotModified) {
			return nil, nil, fmt.Errorf("%s: origin answered 304 Not Modified to a request without validators, for a trusted manifest that no longer verifies: %w",
				c.id, stale)
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", c.id, err)
	}
	c.log.Info("fetched manifest from origin", slog.Int("bytes", len(resp.Body)), slog.String("etag", clip.String(resp.ETag, 64)))
	return resp.Body, c.validators(resp), nil
}

// trustedEnvelope reads the stored envelope of the trusted sequence and
// verifies it against the current root now, as a fresh response would be;
// the error says why it is no longer current (missing, expired, root
// expired, no longer signed by the root's keys).
func (c *cycle) trustedEnvelope() ([]byte, error) {
	if c.st.Trusted == 0 {
		return nil, errors.New("no trusted manifest")
	}
	dir := c.store.ReleaseDir(c.id.Release(c.st.Trusted))
	env, err := store.ReadLimited(filepath.Join(dir, store.ManifestFile), signing.MaxEnvelopeSize)
	if err != nil {
		return nil, fmt.Errorf("trusted manifest, sequence %d: %w", c.st.Trusted, err)
	}
	v, err := manifest.Verify(env, c.currentRoot(), c.now())
	if err != nil {
		return nil, err
	}
	if v.ChannelID() != c.id || v.Sequence != c.st.Trusted {
		return nil, fmt.Errorf("stored manifest of sequence %d is %s/%s sequence %d: %w",
			c.st.Trusted, v.Product, v.Channel, v.Sequence, manifest.ErrInvalid)
	}
	return env, nil
}

// validators returns the response's validators to remember, without those
// longer than maxValidator.
func (c *cycle) validators(resp *fetch.ManifestResponse) *freshManifest {
	f := &freshManifest{etag: resp.ETag, lastModified: resp.LastModified}
	if len(f.etag) > store.MaxValidator {
		c.log.Warn("origin's ETag not kept", slog.Int("bytes", len(f.etag)), slog.Int("limit", store.MaxValidator))
		f.etag = ""
	}
	if len(f.lastModified) > store.MaxValidator {
		c.log.Warn("origin's Last-Modified not kept", slog.Int("bytes", len(f.lastModified)), slog.Int("limit", store.MaxValidator))
		f.lastModified = ""
	}
	return f
}

// verify follows the root chain (for a freshly fetched manifest) and checks
// the envelope: signatures, threshold, expiry, and that it is the
// subscription's product and channel.
func (c *cycle) verify(ctx context.Context, env []byte, fresh *freshManifest) (*manifest.Verified, error) {
	root := c.currentRoot()
	if fresh != nil {
		var err error
		if root, err = c.followRoots(ctx, c.log); err != nil {
			return nil, err
		}
	}
	v, err := manifest.Verify(env, root, c.now())
	if err != nil {
		c.log.Error("manifest refused", slog.String("reason", err.Error()))
		return nil, fmt.Errorf("%s: %w", c.id, err)
	}
	if v.ChannelID() != c.id {
		return nil, fmt.Errorf("%s: origin served a manifest for %s/%s: %w; not trusted",
			c.id, v.Product, v.Channel, manifest.ErrInvalid)
	}
	c.log.Info("manifest verified", slog.Uint64("sequence", v.Sequence), slog.String("version", v.Version),
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
func (c *cycle) trust(v *manifest.Verified, env []byte) error {
	dir := c.store.ReleaseDir(c.id.Release(v.Sequence))
	if _, err := os.Stat(filepath.Join(dir, store.ManifestFile)); err != nil || v.Sequence > c.st.Trusted {
		if err := c.store.SaveManifest(c.id.Release(v.Sequence), env); err != nil {
			return err
		}
	}
	if v.Sequence > c.st.Trusted {
		c.log.Info("new release trusted", slog.Uint64("sequence", v.Sequence), slog.Uint64("previous_trusted", c.st.Trusted))
		c.st.Trusted = v.Sequence
		c.st.ClearRetry()
		return c.save()
	}
	return nil
}

// update assembles and installs a trusted release.
func (c *cycle) update(ctx context.Context, v *manifest.Verified, fresh *freshManifest) (peerproto.Outcome, error) {
	c.log = c.log.With(slog.Uint64("sequence", v.Sequence), slog.String("version", v.Version)) // the rest of the cycle is about v
	if c.st.Waiting(v.Sequence, c.now()) {
		return c.deferred(v, fresh)
	}
	dir := c.store.ReleaseDir(c.id.Release(v.Sequence))
	prog := c.ch.startProgress(v.Manifest, c.now(), c.metrics)
	if !c.store.Complete(c.id.Release(v.Sequence)) {
		start := c.now()
		c.log.Info("assembling release", slog.Int64("bytes", v.Artifact.Size), slog.Int("chunks", len(v.Chunks)))
		var sw *swarm.Config
		done := func() {}
		if pm := c.pm(); pm != nil {
			sw = pm.swarm()
			done = pm.Assembling() // follow every peer while the fleet shares the release
			// Their states in, or origin_grace: the origin's chunks are
			// shared knowing who is fetching what.
			deadline, stop := c.clock.NewTimer(c.cfg.OriginGrace)
			c.awaitFollows(ctx, deadline, 0)
			stop()
		}
		tr, err := swarm.Assemble(ctx, c.store, v.Manifest, dir, c.origin, c.cfg.OriginConnections, sw, prog, c.log)
		done()
		tr.Seconds = c.now().Sub(start).Seconds()
		c.ch.transferred(v.Sequence, tr)
		if err != nil {
			c.log.Error("assembly failed", slog.String("reason", err.Error()))
			return peerproto.Failed, fmt.Errorf("%s sequence %d: %w", c.id, v.Sequence, err)
		}
		c.metrics.fetchTime(c.id, tr.Seconds)
		c.log.Info("artifact verified", slog.Int64("origin_bytes", tr.Origin), slog.Int64("origin_chunks", tr.OriginChunks),
			slog.Int64("peer_bytes", tr.Peer), slog.Int64("peer_chunks", tr.PeerChunks), slog.Any("origin_reasons", tr.OriginReasons),
			slog.Int64("reused_local_bytes", tr.ReusedLocal), slog.Int64("resumed_bytes", tr.Resumed),
			slog.Int64("duplicate_bytes", tr.Duplicate), slog.Float64("seconds", tr.Seconds))
	}
	prog.StartInstall()
	installStart := c.now()
	res := c.install(ctx, v)
	c.metrics.installTime(c.id, c.now().Sub(installStart).Seconds())
	if res == nil {
		c.st.Installed, c.st.InstalledVersion = v.Sequence, v.Version
		c.st.ClearRetry()
		c.rememberValidators(fresh)
		if err := c.save(); err != nil {
			return peerproto.Failed, err
		}
		if err := c.store.Remove(c.id, v.Sequence); err != nil {
			c.log.Warn("could not remove old releases from the store", slog.String("reason", err.Error()))
		}
		c.log.Info("release installed")
		return peerproto.Updated, nil
	}
	return c.installFailed(v, fresh, res)
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
func (c *cycle) installFailed(v *manifest.Verified, fresh *freshManifest, res error) (peerproto.Outcome, error) {
	release := fmt.Sprintf("%s sequence %d", c.id, v.Sequence)
	switch classifyInstall(res) {
	case failedHealth:
		c.log.Error("release failed its health check; not tried again", slog.String("reason", res.Error()))
		c.st.Failed, c.st.FailedReason = v.Sequence, res.Error()
		return peerproto.HealthFailed, c.saveFailure(fresh, fmt.Errorf("%s: %w; it will not be tried again", release, res))
	case failedRefused:
		cause := unswitched(res)
		c.log.Error("release refused by its installer, nothing was switched; not tried again until a newer sequence", slog.String("reason", cause.Error()))
		c.st.Failed, c.st.FailedReason = v.Sequence, cause.Error()
		return peerproto.Refused, c.saveFailure(fresh, fmt.Errorf("%s (version %s) refused by its installer, nothing was switched: %w; not tried again until a newer sequence",
			release, v.Version, cause))
	case failedNoSpace:
		cause := unswitched(res)
		c.st.NoSpace(v.Sequence, cause.Error(), c.now(), c.cfg.PollInterval)
		c.log.Error("release does not fit on its target's file system; what was written is removed; backing off",
			slog.Time("retry_after", c.st.RetryAfter), slog.Int("attempts", c.st.RetryCount), slog.String("reason", cause.Error()))
		return peerproto.Failed, c.saveFailure(fresh, fmt.Errorf("%s: %w; attempt %d, not tried again before %s: free space on the target's file system, or wait for a newer release",
			release, cause, c.st.RetryCount, c.st.RetryAfter.Format(time.RFC3339)))
	case failedUnsafeTarget:
		cause := unswitched(res)
		c.log.Error("install target is not as fleetcast made it: repair the path the reason names (or move it away); the same release is installed on the next cycle after that",
			slog.String("target", v.Install.Target), slog.String("reason", cause.Error()))
		return peerproto.Failed, fmt.Errorf("%s: %w; nothing was switched; not a verdict on the release: it is tried again every cycle, and installs once that path is repaired", release, cause)
	}
	c.log.Error("install failed", slog.String("reason", res.Error()))
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
func (c *cycle) saveFailure(fresh *freshManifest, err error) error {
	c.rememberValidators(fresh)
	if serr := c.save(); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}

// deferred is the cycle of a release that did not fit on its target's file
// system, while it waits for its backoff: it installs nothing.
func (c *cycle) deferred(v *manifest.Verified, fresh *freshManifest) (peerproto.Outcome, error) {
	c.log.Info("waiting before retrying a release that did not fit on its target's file system",
		slog.Time("retry_after", c.st.RetryAfter), slog.Int("attempts", c.st.RetryCount), slog.String("reason", c.st.RetryReason))
	return peerproto.Deferred, c.saveFailure(fresh, fmt.Errorf("%s sequence %d (version %s): %w (attempts so far: %d; the last: %s); not tried again before %s: free space on it, or wait for a newer release",
		c.id, v.Sequence, v.Version, installers.ErrNoSpace, c.st.RetryCount, c.st.RetryReason, c.st.RetryAfter.Format(time.RFC3339)))
}

// install hands the verified artifact to its installer. It runs to its end
// even when ctx is cancelled, so that a shutdown never cuts a command or a
// health check in half (each has its own timeout).
func (c *cycle) install(ctx context.Context, v *manifest.Verified) error {
	stateDir := store.InstallerDir(c.cfg.DataDir, c.id)
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}
	req := &installers.Request{
		ChannelID: c.id,
		New: installers.Release{Sequence: v.Sequence, Version: v.Version,
			Artifact: c.store.ArtifactPath(c.id.Release(v.Sequence)), Install: v.Install},
		Previous:       c.previous(),
		StateDir:       stateDir,
		CommandTimeout: c.cfg.CommandTimeout,
		HealthTimeout:  c.cfg.HealthTimeout,
		KeepReleases:   c.cfg.KeepReleases,
		AllowedTargets: c.cfg.AllowedTargets,
		Log:            c.log,
	}
	c.log.Info("installing", slog.String("installer", v.Install.Installer), slog.String("target", v.Install.Target))
	_, err := runInstaller(context.WithoutCancel(ctx), req)
	return err
}

// runInstaller is installers.Install; tests replace it to make an installer
// fail as a real one cannot be made to on every machine (no space, a
// target tampered with).
var runInstaller = installers.Install

// previous is the installed release, to roll back to, if the store has it.
func (c *cycle) previous() *installers.Release {
	if c.st.Installed == 0 || !c.store.Complete(c.id.Release(c.st.Installed)) {
		return nil
	}
	m, err := store.LoadManifest(c.store.ReleaseDir(c.id.Release(c.st.Installed)))
	if err != nil {
		c.log.Warn("installed release's manifest unreadable; no rollback target", slog.String("reason", err.Error()))
		return nil
	}
	return &installers.Release{Sequence: c.st.Installed, Version: m.Version,
		Artifact: c.store.ArtifactPath(c.id.Release(c.st.Installed)), Install: m.Install}
}

func (c *cycle) rememberValidators(fresh *freshManifest) {
	if fresh != nil {
		c.st.ETag, c.st.LastModified = fresh.etag, fresh.lastModified
	}
}

// saveValidators remembers the manifest response's validators once the
// manifest it named is handled, so the next poll is a cheap 304.
func (c *cycle) saveValidators(fresh *freshManifest) error {
	if fresh == nil || (fresh.etag == c.st.ETag && fresh.lastModified == c.st.LastModified) {
		return nil
	}
	c.rememberValidators(fresh)
	return c.save()
}
