package agent

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/agent/config"
	"github.com/fleetcast/fleetcast/agent/fleettls"
	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/agent/store"
	"github.com/fleetcast/fleetcast/agent/swarm"
	"github.com/fleetcast/fleetcast/internal/nettest"
	"github.com/fleetcast/fleetcast/internal/origintest"
	"github.com/fleetcast/fleetcast/internal/releasetest"
	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/signing"
)

// Real agents (New, Once) against an origin directory written by
// publisher.Publish, served by origintest (with an ETag on the channel's
// manifest), and a clock the test sets.

// publishRelease writes root (on first use) and release version of
// app/stable into the origin directory dir, created at now and valid for
// expires, with install instructions in.
func publishRelease(t *testing.T, dir string, key *signing.PrivateKey, root []byte, version string, now time.Time, expires time.Duration, in manifest.Install) *manifest.Manifest {
	t.Helper()
	return publishApp(t, dir, key, root, releasetest.Data(3, 100<<10), version, in, now, expires)
}

// clockAgent is an agent without peers whose clock the test sets.
type clockAgent struct {
	*Agent
	frozen *frozenClock
}

func (c *clockAgent) set(t time.Time) { c.frozen.ns.Store(t.UnixNano()) }

// frozenClock reads the time the test sets; its timers are the system's,
// so that waits end as they would.
type frozenClock struct{ ns atomic.Int64 }

func (c *frozenClock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

func (c *frozenClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	return swarm.SystemClock{}.NewTimer(d)
}

// newClockAgent makes an agent subscribed to app/stable of the origin at
// URL origin, pinned to root, allowed to install under dir, its clock at
// now.
func newClockAgent(t *testing.T, origin string, root []byte, dir string, now time.Time, change func(*config.Config)) *clockAgent {
	t.Helper()
	base := t.TempDir()
	rootFile := filepath.Join(base, "root.json")
	if err := os.WriteFile(rootFile, root, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir, cfg.Root, cfg.Origin = filepath.Join(base, "data"), rootFile, origin
	cfg.Listen, cfg.MDNS = "", false
	cfg.Retries, cfg.RetryBackoff, cfg.RetryBackoffMax = 0, 10*time.Millisecond, 20*time.Millisecond
	cfg.AllowedTargets = []string{dir + string(filepath.Separator)}
	cfg.Subscriptions = []manifest.ChannelID{{Product: "app", Channel: "stable"}}
	if change != nil {
		change(&cfg)
	}
	a, err := New(&cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	c := &clockAgent{Agent: a, frozen: &frozenClock{}}
	c.set(now)
	a.clock = c.frozen
	return c
}

// once runs one cycle and returns its error and the status it left.
func (c *clockAgent) once(t *testing.T) (peerproto.SubscriptionStatus, error) {
	t.Helper()
	err := c.Once(context.Background())
	return c.Status().Subscriptions[0], err
}

func (c *clockAgent) state(t *testing.T) store.State {
	t.Helper()
	st, err := store.LoadState(c.cfg.DataDir, manifest.ChannelID{Product: "app", Channel: "stable"})
	if err != nil {
		t.Fatalf("state: %v", err)
	}
	return st
}

// TestHealthCheckNeedsCommand: a file release with a health check is not
// installed, and its health check not run, unless "command" is in
// allowed_installers.
func TestHealthCheckNeedsCommand(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("uses /bin/sh")
	}
	for _, tc := range []struct {
		name    string
		allowed []string
		want    peerproto.Outcome
		err     string
	}{
		{"default policy", nil, peerproto.Failed,
			`app/stable sequence 1 (version 1.2): the release asks to run health check "/bin/sh -c touch \"$0\" `},
		{"command allowed", []string{"file", "command"}, peerproto.Updated, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := origintest.New(t, t.TempDir())
			key := liveKey(t)
			now := time.Now()
			root := signedRoot(t, key, now.Add(24*time.Hour))
			dir := t.TempDir()
			target, marker := filepath.Join(dir, "app"), filepath.Join(t.TempDir(), "ran")
			publishRelease(t, o.Dir(), key, root, "1.2", now, time.Hour, manifest.Install{Installer: "file", Target: target, Mode: "0644",
				HealthCheck: []string{"/bin/sh", "-c", `touch "$0"`, marker}})
			a := newClockAgent(t, o.URL(), root, dir, now, func(c *config.Config) {
				if tc.allowed != nil {
					c.AllowedInstallers = tc.allowed
				}
			})
			st, err := a.once(t)
			if st.LastOutcome != tc.want {
				t.Fatalf("outcome %q (%v); want %q", st.LastOutcome, err, tc.want)
			}
			_, ranErr := os.Stat(marker)
			_, installedErr := os.Stat(target)
			if tc.err == "" {
				if err != nil || ranErr != nil || installedErr != nil {
					t.Fatalf("error %v; health check ran: %v; installed: %v", err, ranErr == nil, installedErr == nil)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), `add "command" to allowed_installers`) {
				t.Fatalf("got error\n\t%v\nwant one containing\n\t%s", err, tc.err)
			}
			if ranErr == nil || installedErr == nil {
				t.Fatalf("refused, yet health check ran: %v; installed: %v", ranErr == nil, installedErr == nil)
			}
			if s := a.state(t); s.Trusted != 0 || s.Installed != 0 {
				t.Errorf("state %+v; want nothing trusted or installed", s)
			}
		})
	}
}

// TestNotModifiedChecksExpiry: a 304 keeps an agent up to date only while
// its trusted manifest and its root are unexpired; then the cycle fails as
// it would for a freshly fetched manifest, and the validators are dropped.
func TestNotModifiedChecksExpiry(t *testing.T) {
	for _, tc := range []struct {
		name             string
		rootTTL, manTTL  time.Duration
		answer           origintest.Revalidation // after the second cycle
		want             error
		wantMsg, wantNot string
	}{
		{"manifest expired", 48 * time.Hour, time.Hour, origintest.Honest, manifest.ErrExpired, "manifest expired", ""},
		{"root expired", time.Hour, 48 * time.Hour, origintest.Honest, signing.ErrRootExpired, "trust root expired", ""},
		{"manifest expired, origin always 304", 48 * time.Hour, time.Hour, origintest.Always304, manifest.ErrExpired,
			"origin answered 304 Not Modified to a request without validators", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := origintest.New(t, t.TempDir())
			key := liveKey(t)
			now := time.Now()
			root := signedRoot(t, key, now.Add(tc.rootTTL))
			dir := t.TempDir()
			publishRelease(t, o.Dir(), key, root, "1.0", now, tc.manTTL, manifest.Install{Installer: "file", Target: filepath.Join(dir, "app"), Mode: "0644"})
			a := newClockAgent(t, o.URL(), root, dir, now, nil)
			if st, err := a.once(t); err != nil || st.LastOutcome != peerproto.Updated {
				t.Fatalf("first cycle: %q, %v", st.LastOutcome, err)
			}
			if st, err := a.once(t); err != nil || st.LastOutcome != peerproto.UpToDate {
				t.Fatalf("second cycle: %q, %v", st.LastOutcome, err)
			}
			if n := o.Served().NotModified; n != 1 {
				t.Fatalf("%d 304 answers after the second cycle; want 1", n)
			}
			o.Revalidate(tc.answer)

			a.set(now.Add(2 * time.Hour))
			st, err := a.once(t)
			if !errors.Is(err, tc.want) || st.LastOutcome != peerproto.Failed {
				t.Fatalf("cycle after expiry: outcome %q, error %v; want %q wrapping %v", st.LastOutcome, err, peerproto.Failed, tc.want)
			}
			if !strings.Contains(st.LastError, tc.wantMsg) {
				t.Errorf("last_error %q; want it to contain %q", st.LastError, tc.wantMsg)
			}
			if s := a.state(t); s.ETag != "" || s.LastModified != "" || s.Installed != 1 {
				t.Errorf("state %+v; want the validators dropped, sequence 1 still installed", s)
			}
			a.once(t)
			if inm := o.Served().LastIfNoneMatch; inm != "" {
				t.Errorf("the next cycle sent If-None-Match %q; want a full fetch", inm)
			}
		})
	}
}

// TestLongValidatorNotStored: an ETag longer than the state file may hold is
// not stored, and the subscription keeps working.
func TestLongValidatorNotStored(t *testing.T) {
	o := origintest.New(t, t.TempDir())
	o.SetETag(`"` + strings.Repeat("a", 100<<10) + `"`)
	key := liveKey(t)
	now := time.Now()
	root := signedRoot(t, key, now.Add(24*time.Hour))
	dir := t.TempDir()
	publishRelease(t, o.Dir(), key, root, "1.0", now, time.Hour, manifest.Install{Installer: "file", Target: filepath.Join(dir, "app"), Mode: "0644"})
	a := newClockAgent(t, o.URL(), root, dir, now, nil)
	for i, want := range []peerproto.Outcome{peerproto.Updated, peerproto.UpToDate, peerproto.UpToDate} {
		if st, err := a.once(t); err != nil || st.LastOutcome != want {
			t.Fatalf("cycle %d: %q, %v; want %q", i+1, st.LastOutcome, err, want)
		}
		if s := a.state(t); s.ETag != "" || s.Installed != 1 {
			t.Fatalf("cycle %d: state has a %d-byte ETag, installed %d; want none, 1", i+1, len(s.ETag), s.Installed)
		}
		if inm := o.Served().LastIfNoneMatch; inm != "" {
			t.Fatalf("cycle %d sent an If-None-Match of %d bytes; want none", i+1, len(inm))
		}
	}
}

// TestStateStaysReadable: whatever the validators and failure reason,
// saveState writes a state file that loadState reads.
func TestStateStaysReadable(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("<&>", store.MaxStateSize)
	in := store.State{Trusted: 7, Installed: 6, InstalledVersion: "1.0", Failed: 7, FailedReason: long, ETag: long, LastModified: long}
	if err := store.SaveState(dir, manifest.ChannelID{Product: "app", Channel: "stable"}, in); err != nil {
		t.Fatal(err)
	}
	st, err := store.LoadState(dir, manifest.ChannelID{Product: "app", Channel: "stable"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Trusted != 7 || st.Installed != 6 || st.Failed != 7 || st.ETag != "" || st.LastModified != "" ||
		!strings.HasPrefix(long, strings.TrimSuffix(st.FailedReason, "...")) || len(st.FailedReason) > store.MaxFailedReason+3 {
		t.Errorf("loaded %+v", st)
	}
}

// TestUndeliverableOffersThrottled: a peer that claims ever higher
// sequences and delivers none of them starts no cycle after its first
// failed offer, until poll_interval has passed.
func TestUndeliverableOffersThrottled(t *testing.T) {
	var version, manifestAsks atomic.Uint64
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != peerproto.StatePath {
			manifestAsks.Add(1)
			http.NotFound(w, r)
			return
		}
		v := version.Add(1)
		json.NewEncoder(w).Encode(peerproto.State{Proto: peerproto.Proto, AgentID: "00000000000000ff", FleetID: fleettls.OpenID, Version: v,
			Releases:      []peerproto.ReleaseHave{{ReleaseID: manifest.ChannelID{Product: "app", Channel: "stable"}.Release(100 + v), Chunks: 1, Have: "AQ==", Fetching: "AA=="}},
			Subscriptions: []manifest.ChannelID{{Product: "app", Channel: "stable"}}})
	}))
	t.Cleanup(peer.Close)

	o := origintest.New(t, t.TempDir())
	key := liveKey(t)
	now := time.Now()
	root := signedRoot(t, key, now.Add(24*time.Hour))
	dir := t.TempDir()
	publishRelease(t, o.Dir(), key, root, "1.0", now, time.Hour, manifest.Install{Installer: "file", Target: filepath.Join(dir, "app"), Mode: "0644"})
	a := newClockAgent(t, o.URL(), root, dir, now, func(c *config.Config) {
		c.Listen, c.PollInterval = nettest.FreeAddr(t), time.Hour
		c.Peers = []string{strings.TrimPrefix(peer.URL, "http://")}
	})
	a.clock = swarm.SystemClock{} // the peer manager and the scheduler wait for time to pass
	runAgent(t, a)
	manifestGets := func() int { return o.Served().Manifests }
	deadline := time.Now().Add(20 * time.Second)
	for manifestAsks.Load() == 0 || a.Status().Subscriptions[0].InstalledSequence != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no install and offer tried within 20 s: %+v, %d manifest requests to the peer", a.Status().Subscriptions[0], manifestAsks.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	before, beforeAsks := manifestGets(), manifestAsks.Load()
	time.Sleep(2 * time.Second) // what must not happen: cycles at up to 4 a second
	if n, asks := manifestGets()-before, manifestAsks.Load()-beforeAsks; n > 1 || asks > 1 || version.Load() < 10 {
		t.Errorf("in 2 s: %d manifest requests to the origin, %d to the peer, peer state version %d; want at most 1 each, while the peer claims new sequences",
			n, asks, version.Load())
	}
}
