package agent

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/agent/config"
	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/internal/nettest"
	"github.com/fleetcast/fleetcast/internal/releasetest"
	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/publisher"
	"github.com/fleetcast/fleetcast/signing"
	"github.com/fleetcast/fleetcast/signing/signingtest"
)

// A real agent (New, Run) against a real origin directory written by
// publisher.Publish and served by origintest, with its status and metrics API
// on a loopback port: the fixture of progress_test.go and metrics_test.go.

// liveRelease is what publishLive put on the origin.
type liveRelease struct {
	m    *manifest.Manifest
	data []byte
}

// publishLive writes a root (on first use) and a release of size random
// bytes into the origin directory dir, installed by the file installer at
// target.
func publishLive(t *testing.T, dir string, key *signing.PrivateKey, size int, target string) liveRelease {
	t.Helper()
	data := releasetest.Data(7, size)
	m := publishApp(t, dir, key, liveRoot(t, key), data, "1.0", manifest.Install{Installer: "file", Target: target, Mode: "0644"}, time.Time{}, 0)
	return liveRelease{m: m, data: data}
}

// publishApp writes root (on first use) and release version of app/stable
// holding data into the origin directory dir, installed as in says, created
// at now and valid for expires (zero: publisher's defaults).
func publishApp(t *testing.T, dir string, key *signing.PrivateKey, root, data []byte, version string, in manifest.Install, now time.Time, expires time.Duration) *manifest.Manifest {
	t.Helper()
	ctx := context.Background()
	po := publisher.Origin{Dir: dir}
	if _, _, err := po.AddRoot(ctx, root); err != nil {
		t.Fatal(err)
	}
	art := filepath.Join(t.TempDir(), "app.bin")
	if err := os.WriteFile(art, data, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := publisher.Publish(ctx, po, art, publisher.Options{Product: "app", Channel: "stable", Version: version,
		Keys: []*signing.PrivateKey{key}, Install: in, Now: now, Expires: expires,
		Chunking: manifest.Chunking{Algorithm: manifest.ChunkingFastCDC, Min: 16 << 10, Avg: 32 << 10, Max: 64 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	return res.Manifest
}

func liveKey(t *testing.T) *signing.PrivateKey { return signingtest.Key(t, 9) }

// liveRoot is a version 1 root of key alone, signed by it, valid for a day.
func liveRoot(t *testing.T, key *signing.PrivateKey) []byte {
	return signedRoot(t, key, time.Now().Add(24*time.Hour))
}

// signedRoot is a version 1 root of key alone, signed by it, expiring at expires.
func signedRoot(t *testing.T, key *signing.PrivateKey, expires time.Time) []byte {
	return signingtest.SignRoot(t, signingtest.Root(1, 1, expires, key), key)
}

// liveAgent is an agent started with Run, its API at base.
type liveAgent struct {
	a      *Agent
	base   string // http://127.0.0.1:port
	target string // where the release is installed
}

// startLiveAgent runs an agent subscribed to app/stable of the origin at
// URL origin until the test ends. Its artifact target is target; change
// adjusts the configuration.
func startLiveAgent(t *testing.T, origin string, key *signing.PrivateKey, target string, change func(*config.Config)) *liveAgent {
	t.Helper()
	dir := t.TempDir()
	rootFile := filepath.Join(dir, "root.json")
	if err := os.WriteFile(rootFile, liveRoot(t, key), 0o644); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(nettest.FreePort(t))
	cfg := config.Default()
	cfg.DataDir, cfg.Root, cfg.Origin = filepath.Join(dir, "data"), rootFile, origin
	cfg.Listen, cfg.MDNS, cfg.PollInterval = net.JoinHostPort("127.0.0.1", port), false, time.Hour
	cfg.OriginConnections, cfg.RetryBackoff, cfg.RetryBackoffMax = 1, 10*time.Millisecond, 20*time.Millisecond
	cfg.AllowedTargets = []string{filepath.Dir(target) + string(filepath.Separator)}
	cfg.Subscriptions = []manifest.ChannelID{{Product: "app", Channel: "stable"}}
	if change != nil {
		change(&cfg)
	}
	a, err := New(&cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	runAgent(t, a)
	return &liveAgent{a: a, base: "http://" + cfg.Listen, target: target}
}

// get returns the body of GET path, or "" while the API is not up yet.
func (l *liveAgent) get(t *testing.T, path string) []byte {
	t.Helper()
	resp, err := http.Get(l.base + path)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d, %v", path, resp.StatusCode, err)
	}
	return b
}

// status returns the subscription's status from GET /v1/status, or false
// while the API is not up yet.
func (l *liveAgent) status(t *testing.T) (peerproto.SubscriptionStatus, bool) {
	t.Helper()
	b := l.get(t, "/v1/status")
	if b == nil {
		return peerproto.SubscriptionStatus{}, false
	}
	var st peerproto.Status
	if err := json.Unmarshal(b, &st); err != nil || len(st.Subscriptions) != 1 {
		t.Fatalf("GET /v1/status: %v, %d subscriptions:\n%s", err, len(st.Subscriptions), b)
	}
	return st.Subscriptions[0], true
}

// waitStatus polls GET /v1/status until ok holds, for at most 20 s.
func (l *liveAgent) waitStatus(t *testing.T, what string, ok func(peerproto.SubscriptionStatus) bool) peerproto.SubscriptionStatus {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, up := l.status(t)
		if up && ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 20 s; last status: %+v", what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// cycleDone: the agent's first cycle is over.
func cycleDone(st peerproto.SubscriptionStatus) bool { return st.LastOutcome != "" }

// runAgent runs a until the test ends, and fails the test if Run fails.
func runAgent(t *testing.T, a interface{ Run(context.Context) error }) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}
