package publisher

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/signing"
	"github.com/fleetcast/fleetcast/signing/signingtest"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func writeArtifact(t *testing.T, dir string, seed uint64, size int) (string, []byte) {
	t.Helper()
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(data)
	p := filepath.Join(dir, "app.bin")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, data
}

func testOptions(version string, keys ...*signing.PrivateKey) Options {
	return Options{
		Product: "app", Channel: "stable", Version: version, Keys: keys, Now: t0,
		Install:  manifest.Install{Installer: "file", Target: "/opt/app/bin/app", Mode: "0755"},
		Chunking: manifest.Chunking{Algorithm: manifest.ChunkingFastCDC, Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10},
	}
}

func newOrigin(t *testing.T, rootEnv []byte) Origin {
	t.Helper()
	o := Origin{Dir: filepath.Join(t.TempDir(), "origin")}
	if _, _, err := o.AddRoot(context.Background(), rootEnv); err != nil {
		t.Fatal(err)
	}
	return o
}

func readVerified(t *testing.T, o Origin, rel string) *manifest.Verified {
	t.Helper()
	root, err := o.Root(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(o.path(rel))
	if err != nil {
		t.Fatal(err)
	}
	v, err := manifest.Verify(data, root, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestPublishWritesVerifiableRelease(t *testing.T) {
	a := signingtest.Key(t, 1)
	o := newOrigin(t, signedRoot(t, 1, 1, []*signing.PrivateKey{a}, a))
	path, data := writeArtifact(t, t.TempDir(), 1, 3<<20)

	res, err := Publish(context.Background(), o, path, testOptions("1.0.0", a))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Published || res.Manifest.Sequence != 1 || res.NewChunks != res.Chunks || res.NewBytes != int64(len(data)) {
		t.Fatalf("first publish: %+v", res)
	}
	v := readVerified(t, o, manifest.LatestPath("app", "stable"))
	if v.Sequence != 1 || v.Version != "1.0.0" || v.Artifact.Name != "app.bin" || !v.Expires.Equal(t0.Add(DefaultExpiry)) {
		t.Fatalf("published manifest: %+v", v.Manifest)
	}
	if _, err := manifest.VerifyArtifact(bytes.NewReader(data), v.Manifest); err != nil {
		t.Fatal(err)
	}
	for _, c := range v.Chunks { // every chunk is stored under its digest
		stored, err := os.ReadFile(o.path(manifest.ChunkPath(c.SHA256)))
		if err != nil || manifest.Sum(stored) != c.SHA256 {
			t.Fatalf("chunk %s: %v", c.SHA256, err)
		}
	}
	hist := readVerified(t, o, manifest.HistoryPath("app", "stable", 1))
	if hist.Artifact.SHA256 != v.Artifact.SHA256 {
		t.Fatal("history and latest differ")
	}
}

func TestPublishSecondReleaseStoresOnlyNewChunks(t *testing.T) {
	a := signingtest.Key(t, 1)
	o := newOrigin(t, signedRoot(t, 1, 1, []*signing.PrivateKey{a}, a))
	dir := t.TempDir()
	path, data := writeArtifact(t, dir, 2, 8<<20)
	if _, err := Publish(context.Background(), o, path, testOptions("1", a)); err != nil {
		t.Fatal(err)
	}
	copy(data[4<<20:], "patched")
	os.WriteFile(path, data, 0o644)
	res, err := Publish(context.Background(), o, path, testOptions("2", a))
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.Sequence != 2 {
		t.Fatalf("sequence %d, want 2", res.Manifest.Sequence)
	}
	if res.NewChunks > 2 || res.NewBytes > 3*256<<10 {
		t.Fatalf("a 7-byte change stored %d new chunks, %d new bytes of %d", res.NewChunks, res.NewBytes, res.Bytes)
	}
	if _, err := Publish(context.Background(), o, path, testOptions("2", a)); !errors.Is(err, ErrVersionExists) {
		t.Fatalf("republishing version 2: %v, want ErrVersionExists", err)
	}
	if v := readVerified(t, o, manifest.LatestPath("app", "stable")); v.Sequence != 2 {
		t.Fatalf("latest is sequence %d after a refused publish, want 2", v.Sequence)
	}
}

func TestPublishBelowThresholdThenCosign(t *testing.T) {
	a, b, c := signingtest.Key(t, 1), signingtest.Key(t, 2), signingtest.Key(t, 3)
	o := newOrigin(t, signedRoot(t, 1, 2, []*signing.PrivateKey{a, b, c}, a, b, c))
	path, _ := writeArtifact(t, t.TempDir(), 3, 1<<20)
	res, err := Publish(context.Background(), o, path, testOptions("1", a))
	if err != nil {
		t.Fatal(err)
	}
	if res.Published || res.Path != manifest.PendingPath("app", "stable", 1) {
		t.Fatalf("below threshold: %+v", res)
	}
	if _, err := os.Stat(o.path(manifest.LatestPath("app", "stable"))); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a manifest below the threshold became the latest release")
	}
	pending, _ := os.ReadFile(o.path(res.Path))
	if _, err := PublishPending(context.Background(), o, pending, t0); !errors.Is(err, signing.ErrThreshold) {
		t.Fatalf("PublishPending with one signature: %v, want ErrThreshold", err)
	}
	env, _ := signing.ParseEnvelope(pending)
	env.Sign(c)
	res, err = PublishPending(context.Background(), o, env.Marshal(), t0)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Published || res.Manifest.Sequence != 1 {
		t.Fatalf("co-signed publish: %+v", res)
	}
	if _, err := os.Stat(o.path(manifest.PendingPath("app", "stable", 1))); !errors.Is(err, os.ErrNotExist) {
		t.Error("pending manifest left behind after publishing it")
	}
	// Publishing it again (a retry after a crash, say) changes nothing and says so.
	again, err := PublishPending(context.Background(), o, env.Marshal(), t0)
	if err != nil || !again.AlreadyPublished {
		t.Fatalf("publishing the same pending manifest twice: %+v, %v", again, err)
	}
}

func TestPublishPendingRefusesStaleSequenceAndMissingChunks(t *testing.T) {
	a, b := signingtest.Key(t, 1), signingtest.Key(t, 2)
	o := newOrigin(t, signedRoot(t, 1, 2, []*signing.PrivateKey{a, b}, a, b))
	path, _ := writeArtifact(t, t.TempDir(), 4, 1<<20)
	res, err := Publish(context.Background(), o, path, testOptions("1", a))
	if err != nil {
		t.Fatal(err)
	}
	pending, _ := os.ReadFile(o.path(res.Path))
	env, _ := signing.ParseEnvelope(pending)
	env.Sign(b)

	// Meanwhile another release took sequence 1.
	if _, err := Publish(context.Background(), o, path, testOptions("other", a, b)); err != nil {
		t.Fatal(err)
	}
	if _, err := PublishPending(context.Background(), o, env.Marshal(), t0); !errors.Is(err, manifest.ErrRollback) {
		t.Fatalf("stale pending manifest: %v, want ErrRollback", err)
	}

	o2 := newOrigin(t, signedRoot(t, 1, 2, []*signing.PrivateKey{a, b}, a, b))
	if _, err := PublishPending(context.Background(), o2, env.Marshal(), t0); err == nil || !strings.Contains(err.Error(), "missing from the origin") {
		t.Fatalf("pending manifest on an origin without its chunks: %v", err)
	}
}

func TestPublishRefusals(t *testing.T) {
	a, stranger := signingtest.Key(t, 1), signingtest.Key(t, 9)
	path, _ := writeArtifact(t, t.TempDir(), 5, 100<<10)
	for _, tc := range []struct {
		name string
		opts func(Options) Options
		want string
	}{
		{"foreign key", func(o Options) Options { o.Keys = []*signing.PrivateKey{stranger}; return o }, "not in the trust root"},
		{"no key", func(o Options) Options { o.Keys = nil; return o }, "no signing key"},
		{"bad product", func(o Options) Options { o.Product = "../etc"; return o }, "product"},
		{"reserved channel", func(o Options) Options { o.Channel = "chunks"; return o }, "channel"},
		{"bad version", func(o Options) Options { o.Version = "1.0 beta"; return o }, "version"},
		{"bad chunking", func(o Options) Options { o.Chunking.Avg = 100 << 10; return o }, "power of two"},
		{"installer without target", func(o Options) Options { o.Install.Target = ""; return o }, "needs a target"},
		{"expired root", func(o Options) Options { o.Now = t0.Add(2 * 365 * 24 * time.Hour); return o }, "trust root expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newOrigin(t, signedRoot(t, 1, 1, []*signing.PrivateKey{a}, a))
			_, err := Publish(context.Background(), o, path, tc.opts(testOptions("1", a)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(o.path(manifest.LatestPath("app", "stable"))); err == nil {
				t.Fatal("refused publish wrote a manifest")
			}
		})
	}
	t.Run("no root", func(t *testing.T) {
		o := Origin{Dir: t.TempDir()}
		if _, err := Publish(context.Background(), o, path, testOptions("1", a)); err == nil || !strings.Contains(err.Error(), "no trust root") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestPublishCancelledLeavesNoRelease(t *testing.T) {
	a := signingtest.Key(t, 1)
	o := newOrigin(t, signedRoot(t, 1, 1, []*signing.PrivateKey{a}, a))
	path, _ := writeArtifact(t, t.TempDir(), 6, 4<<20)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Publish(ctx, o, path, testOptions("1", a)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled publish: %v", err)
	}
	for _, rel := range []string{manifest.LatestPath("app", "stable"), manifest.HistoryPath("app", "stable", 1)} {
		if _, err := os.Stat(o.path(rel)); err == nil {
			t.Errorf("%s exists after a cancelled publish", rel)
		}
	}
	// The lock is released: the next publish goes through.
	if _, err := Publish(context.Background(), o, path, testOptions("1", a)); err != nil {
		t.Fatal(err)
	}
}

func TestPublishRefusesWhileLocked(t *testing.T) {
	a := signingtest.Key(t, 1)
	o := newOrigin(t, signedRoot(t, 1, 1, []*signing.PrivateKey{a}, a))
	path, _ := writeArtifact(t, t.TempDir(), 7, 100<<10)
	unlock, err := o.lock("app/stable")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Publish(context.Background(), o, path, testOptions("1", a)); err == nil || !strings.Contains(err.Error(), "being published by another process") {
		t.Fatalf("publish while locked: %v", err)
	}
	unlock()
	if _, err := Publish(context.Background(), o, path, testOptions("1", a)); err != nil {
		t.Fatal(err)
	}
	// The lock file stays behind (as after a crash), unlocked: no obstacle.
	if _, err := os.Stat(o.path("app/stable/.publish.lock")); err != nil {
		t.Fatal(err)
	}
	if _, err := Publish(context.Background(), o, path, testOptions("2", a)); err != nil {
		t.Fatalf("publish with a stale lock file: %v", err)
	}
}

func TestAddRoot(t *testing.T) {
	ctx := context.Background()
	a, b := signingtest.Key(t, 1), signingtest.Key(t, 2)
	v1 := signedRoot(t, 1, 1, []*signing.PrivateKey{a}, a)
	o := newOrigin(t, v1)
	if _, added, err := o.AddRoot(ctx, v1); err != nil || added {
		t.Fatalf("re-adding the same root: added=%v err=%v", added, err)
	}
	for _, tc := range []struct {
		name string
		env  []byte
		want error
	}{
		{"different version 1", signedRoot(t, 1, 1, []*signing.PrivateKey{b}, b), signing.ErrRotation},
		{"v2 signed by new key only", signedRoot(t, 2, 1, []*signing.PrivateKey{b}, b), signing.ErrRotation},
		{"v3 skips v2", signedRoot(t, 3, 1, []*signing.PrivateKey{b}, a, b), signing.ErrRotation},
	} {
		if _, _, err := o.AddRoot(ctx, tc.env); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	root, added, err := o.AddRoot(ctx, signedRoot(t, 2, 1, []*signing.PrivateKey{b}, a, b))
	if err != nil || !added || root.Version != 2 {
		t.Fatalf("rotation to v2: %v %v %v", root, added, err)
	}
	got, err := o.Root(ctx)
	if err != nil || got.Version != 2 {
		t.Fatalf("origin root after rotation: %v, %v", got, err)
	}
	// A gap in the chain on disk is reported, not skipped.
	os.WriteFile(o.path(manifest.RootPath(4)), signedRoot(t, 4, 1, []*signing.PrivateKey{b}, b), 0o644)
	if _, err := o.Root(ctx); err == nil || !strings.Contains(err.Error(), "chain stops at version 2") {
		t.Fatalf("gap in root chain: %v", err)
	}
}

func TestPublishFinishesACrashedPublish(t *testing.T) {
	a := signingtest.Key(t, 1)
	o := newOrigin(t, signedRoot(t, 1, 1, []*signing.PrivateKey{a}, a))
	path, _ := writeArtifact(t, t.TempDir(), 9, 300<<10)
	for _, v := range []string{"1", "2"} {
		if _, err := Publish(context.Background(), o, path, testOptions(v, a)); err != nil {
			t.Fatal(err)
		}
	}
	// A crash after history/2.json and before manifest.json: latest is still 1.
	first, _ := os.ReadFile(o.path(manifest.HistoryPath("app", "stable", 1)))
	os.WriteFile(o.path(manifest.LatestPath("app", "stable")), first, 0o644)

	res, err := Publish(context.Background(), o, path, testOptions("3", a))
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.Sequence != 3 {
		t.Fatalf("sequence %d, want 3", res.Manifest.Sequence)
	}
	// Before publishing 3, sequence 2 was made the latest (and then superseded).
	os.Remove(o.path(manifest.LatestPath("app", "stable")))
	os.Remove(o.path(manifest.HistoryPath("app", "stable", 3)))
	hist, err := o.history("app", "stable")
	if err != nil {
		t.Fatal(err)
	}
	if err := o.repairLatest("app", "stable", hist, mustRoot(t, o), t0); err != nil {
		t.Fatal(err)
	}
	if v := readVerified(t, o, manifest.LatestPath("app", "stable")); v.Sequence != 2 {
		t.Fatalf("after repair the latest is sequence %d, want 2", v.Sequence)
	}
}

func mustRoot(t *testing.T, o Origin) *signing.Root {
	t.Helper()
	r, err := o.Root(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPublishChecksNameAndExpiryBeforeWriting(t *testing.T) {
	a := signingtest.Key(t, 1)
	o := newOrigin(t, signedRoot(t, 1, 1, []*signing.PrivateKey{a}, a))
	dir := t.TempDir()
	data := make([]byte, 200<<10)
	spaced := filepath.Join(dir, "my app.bin")
	os.WriteFile(spaced, data, 0o644)
	if _, err := Publish(context.Background(), o, spaced, testOptions("1", a)); err == nil || !strings.Contains(err.Error(), "artifact name") {
		t.Fatalf("file name with a space: %v", err)
	}
	opts := testOptions("1", a)
	opts.Now = time.Date(9999, 12, 15, 0, 0, 0, 0, time.UTC)
	opts.ArtifactName = "app.bin"
	if _, err := Publish(context.Background(), o, spaced, opts); err == nil || !strings.Contains(err.Error(), "9999") {
		t.Fatalf("expiry past 9999: %v", err)
	}
	if entries, _ := os.ReadDir(o.path(manifest.ChunksDir)); len(entries) != 0 {
		t.Fatalf("a refused publish wrote chunks: %v", entries)
	}
	opts = testOptions("1", a)
	opts.ArtifactName = "my-app.bin"
	res, err := Publish(context.Background(), o, spaced, opts)
	if err != nil || res.Manifest.Artifact.Name != "my-app.bin" {
		t.Fatalf("ArtifactName: %v, %+v", err, res)
	}
}

func TestDirectPublishRemovesOvertakenPending(t *testing.T) {
	a, b := signingtest.Key(t, 1), signingtest.Key(t, 2)
	o := newOrigin(t, signedRoot(t, 1, 2, []*signing.PrivateKey{a, b}, a, b))
	path, _ := writeArtifact(t, t.TempDir(), 10, 200<<10)
	if _, err := Publish(context.Background(), o, path, testOptions("1.0", a)); err != nil {
		t.Fatal(err)
	}
	if _, err := Publish(context.Background(), o, path, testOptions("1.0", a, b)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(o.path(manifest.PendingPath("app", "stable", 1))); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the pending manifest of a published sequence was left behind")
	}
}

func TestAddRootRefusesOversized(t *testing.T) {
	o := Origin{Dir: t.TempDir()}
	if _, _, err := o.AddRoot(context.Background(), make([]byte, signing.MaxRootSize+1)); !errors.Is(err, signing.ErrTooLarge) {
		t.Fatalf("oversized root: %v", err)
	}
}

// signedRoot returns a root envelope of the keys with threshold k, signed by signers.
func signedRoot(t *testing.T, version uint64, k int, keys []*signing.PrivateKey, signers ...*signing.PrivateKey) []byte {
	return signingtest.SignRoot(t, signingtest.Root(version, k, t0.Add(365*24*time.Hour), keys...), signers...)
}
