package publisher

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fleetcast/fleetcast/internal/atomicfile"
	"github.com/fleetcast/fleetcast/internal/filelock"
	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/signing"
)

// PublishPending publishes a co-signed envelope (from Publish below the
// threshold, then `fleetcast sign`) once its signatures meet the origin
// root's threshold. It re-checks everything Publish checked: the sequence
// must still be the next one, the version new, and every chunk present.
func PublishPending(ctx context.Context, o Origin, envelope []byte, now time.Time) (*Result, error) {
	start := time.Now()
	env, err := signing.ParseEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	root, err := o.currentRoot(ctx, now)
	if err != nil {
		return nil, err
	}
	v, err := manifest.VerifyEnvelope(env, root, now)
	if err != nil {
		return nil, err
	}
	m := v.Manifest
	unlock, err := o.lock(m.Product + "/" + m.Channel)
	if err != nil {
		return nil, err
	}
	defer unlock()
	hist, err := o.history(m.Product, m.Channel)
	if err != nil {
		return nil, fmt.Errorf("read %s/%s history: %w", m.Product, m.Channel, err)
	}
	if err := o.repairLatest(m.Product, m.Channel, hist, root, now); err != nil {
		return nil, err
	}
	if o.alreadyPublished(m, env.Payload) {
		os.Remove(o.path(manifest.PendingPath(m.Product, m.Channel, m.Sequence)))
		return &Result{Manifest: m, Published: true, AlreadyPublished: true, Path: manifest.LatestPath(m.Product, m.Channel), SignedBy: v.SignedBy, Root: root,
			Chunks: len(m.Chunks), Bytes: m.Artifact.Size, Duration: time.Since(start)}, nil
	}
	seq, err := nextSequence(m.Product, m.Channel, m.Version, hist)
	if err != nil {
		return nil, err
	}
	if m.Sequence != seq {
		return nil, fmt.Errorf("%w: pending manifest has sequence %d but the next sequence of %s/%s is %d: publish the release again",
			manifest.ErrRollback, m.Sequence, m.Product, m.Channel, seq)
	}
	if err := o.checkChunks(m); err != nil {
		return nil, err
	}
	res := &Result{Manifest: m, Chunks: len(m.Chunks), Bytes: m.Artifact.Size}
	if err := o.finish(ctx, root, env, res, now); err != nil {
		return nil, err
	}
	res.Duration = time.Since(start)
	return res, nil
}

// checkPendingFree refuses to overwrite a pending manifest of another
// version: its co-signatures would be lost. A pending manifest of the same
// version is replaced (the release was published again before co-signing).
func (o Origin) checkPendingFree(rel, version string) error {
	r, err := o.readRelease(o.path(rel))
	if errors.Is(err, os.ErrNotExist) || (err == nil && r.Version == version) {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("%s holds version %s, waiting for co-signatures: publish it (fleetcast publish --manifest) or remove it first", filepath.Join(o.Dir, rel), r.Version)
}

// checkChunks confirms that every chunk of m is in the store with its size.
func (o Origin) checkChunks(m *manifest.Manifest) error {
	for i, c := range m.Chunks {
		fi, err := os.Stat(o.path(manifest.ChunkPath(c.SHA256)))
		if err != nil || fi.Size() != c.Size {
			return fmt.Errorf("chunk %d (%s) is missing from the origin or has the wrong size: publish the artifact again", i, c.SHA256)
		}
	}
	return nil
}

// lock takes the publish lock of a folder of the origin (a channel, or the
// root chain), so that two publishers cannot both claim the next sequence or
// root version. The lock is an OS file lock on .publish.lock: it dies with
// its process, so a crash never leaves the folder locked. The file stays.
func (o Origin) lock(rel string) (func(), error) {
	dir := o.path(rel)
	if err := atomicfile.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p := filepath.Join(dir, ".publish.lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := filelock.TryLock(f); err != nil {
		holder, _ := os.ReadFile(p)
		f.Close()
		if errors.Is(err, filelock.ErrLocked) {
			return nil, fmt.Errorf("%s is being published by another process (%s: %s); try again when it is done", rel, p, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	f.Truncate(0)
	fmt.Fprintf(f, "pid %d\n", os.Getpid())
	return func() { f.Close() }, nil
}

// repairLatest finishes a publish that crashed after writing history but
// before the channel's latest manifest: when the newest history entry is
// newer than manifest.json (or manifest.json is missing) and still verifies,
// it becomes the latest. Otherwise the next release will.
func (o Origin) repairLatest(product, channel string, hist []release, root *signing.Root, now time.Time) error {
	if len(hist) == 0 {
		return nil
	}
	newest := hist[len(hist)-1].Sequence
	latest, err := o.readRelease(o.path(manifest.LatestPath(product, channel)))
	if err == nil && latest.Sequence >= newest {
		return nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	data, err := o.readFile(manifest.HistoryPath(product, channel, newest), signing.MaxEnvelopeSize)
	if err != nil {
		return err
	}
	if _, err := manifest.Verify(data, root, now); err != nil {
		return nil // not a release to finish: the next one supersedes it
	}
	if err := o.writeFile(manifest.LatestPath(product, channel), data); err != nil {
		return err
	}
	os.Remove(o.path(manifest.PendingPath(product, channel, newest)))
	return nil
}

// alreadyPublished reports whether the channel's history holds exactly this
// payload at its sequence: a pending manifest whose publish crashed and was
// then finished by repairLatest.
func (o Origin) alreadyPublished(m *manifest.Manifest, payload []byte) bool {
	data, err := o.readFile(manifest.HistoryPath(m.Product, m.Channel, m.Sequence), signing.MaxEnvelopeSize)
	if err != nil {
		return false
	}
	env, err := signing.ParseEnvelope(data)
	return err == nil && string(env.Payload) == string(payload)
}
