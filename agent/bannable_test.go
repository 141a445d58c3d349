package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/agent/config"
	"github.com/fleetcast/fleetcast/agent/fetch"
	"github.com/fleetcast/fleetcast/agent/fleettls"
	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/agent/swarm"
	"github.com/fleetcast/fleetcast/internal/clocktest"
	"github.com/fleetcast/fleetcast/internal/nettest"
	"github.com/fleetcast/fleetcast/internal/origintest"
	"github.com/fleetcast/fleetcast/internal/releasetest"
	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/signing"
	"github.com/fleetcast/fleetcast/signing/signingtest"
)

// TestBannable: which refusals of a peer's manifest ban the peer. The
// signature and manifest errors come from checkOffer on real envelopes, the
// transfer errors as fetchPeerManifest wraps them.
func TestBannable(t *testing.T) {
	trusted, second, stranger := signingtest.Key(t, 1), signingtest.Key(t, 2), signingtest.Key(t, 3)
	now := time.Unix(1.5e9, 0)
	rootOf := func(threshold int, expires time.Time, keys ...*signing.PrivateKey) *signing.Root {
		return signingtest.Root(1, threshold, expires, keys...)
	}
	one := rootOf(1, now.Add(time.Hour), trusted)
	two := rootOf(2, now.Add(time.Hour), trusted, second)
	offered := manifest.ChannelID{Product: "app", Channel: "stable"}.Release(2)
	payload, err := manifest.Encode(releasetest.Release(t, 2, releasetest.Data(1, 100<<10), releasetest.NewSource()))
	if err != nil {
		t.Fatal(err)
	}
	// envelope signs p as typ by keys, then replaces the payload by alter(p).
	envelope := func(typ string, p []byte, alter func([]byte) []byte, keys ...*signing.PrivateKey) []byte {
		env := signing.NewEnvelope(typ, p)
		for _, k := range keys {
			env.Sign(k)
		}
		if alter != nil {
			env.Payload = alter(bytes.Clone(p))
		}
		return env.Marshal()
	}
	same := func(p []byte) []byte { return p }
	altered := func(p []byte) []byte { return bytes.Replace(p, []byte(`"1.0"`), []byte(`"6.6"`), 1) }
	check := func(root *signing.Root, at time.Time, env []byte) error {
		a := &Agent{root: root, clock: clocktest.New(at)}
		return a.checkOffer(env, offered)
	}
	fetchErr := func(err error) error {
		return fmt.Errorf("peer 192.0.2.1:7600: fetch http://192.0.2.1:7600/v1/peer/manifest/app/stable/2: %w", err)
	}
	other, err := manifest.Encode(releasetest.Release(t, 3, releasetest.Data(1, 100<<10), releasetest.NewSource()))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  error
		ban  bool
		why  string
	}{
		{"payload altered after signing", check(one, now, envelope(manifest.PayloadType, payload, altered, trusted)), true,
			"a trusted key's signature fails only on altered bytes; no honest agent holds them (its ThresholdError also matches ErrThreshold)"},
		{"payload altered, also signed by an unknown key", check(one, now, envelope(manifest.PayloadType, payload, altered, stranger, trusted)), true,
			"the trusted key's failed signature decides"},
		{"signature bytes altered", check(one, now, bytes.Replace(envelope(manifest.PayloadType, payload, nil, trusted), []byte(`"sig":"`), []byte(`"sig":"AAAA`), 1)), true,
			"a trusted key's signature that is not its signature of these bytes"},
		{"altered, one of two signatures fails", check(two, now, envelope(manifest.PayloadType, payload, altered, trusted, second)), true,
			"tampering, whatever the threshold"},
		{"signed only by a key the root does not list", check(one, now, envelope(manifest.PayloadType, payload, same, stranger)), false,
			"a valid release under a root rotation this agent has not followed; left to the origin"},
		{"too few trusted signatures", check(two, now, envelope(manifest.PayloadType, payload, same, trusted)), false,
			"a rotation may have lowered the threshold or changed the keys"},
		{"one key signed twice", check(two, now, envelope(manifest.PayloadType, payload, same, trusted, trusted)), false,
			"the threshold class: counts once, nothing altered"},
		{"no signatures", check(one, now, envelope(manifest.PayloadType, payload, same)), false,
			"the threshold class; banning it gains nothing, as a peer can as cheaply sign with a key of its own, which must not ban"},
		{"manifest expired", check(one, time.Unix(2.1e9, 0), envelope(manifest.PayloadType, payload, same, trusted)), false,
			"an honest peer may keep an old release"},
		{"our root expired", check(rootOf(1, now.Add(-time.Hour), trusted), now, envelope(manifest.PayloadType, payload, same, trusted)), false,
			"this agent's own trouble, not the peer's"},
		{"not an envelope", check(one, now, []byte(`{"payloadType":`)), true, "malformed: no honest agent holds it"},
		{"another payload type", check(one, now, envelope("application/vnd.fleetcast.root.v1+json", payload, same, trusted)), true,
			"an honest agent serves manifests only"},
		{"too large", check(one, now, make([]byte, signing.MaxEnvelopeSize+1)), true, "past a limit no honest envelope reaches"},
		{"signed manifest breaks a rule", check(one, now, envelope(manifest.PayloadType, bytes.Replace(payload, []byte(`"1.0"`), []byte(`" "`), 1), nil, trusted)), true,
			"invalid: an honest agent verified what it holds"},
		{"another release than offered", check(one, now, envelope(manifest.PayloadType, other, same, trusted)), true,
			"it offered sequence 2 and sent sequence 3"},
		{"body longer than allowed", fetchErr(fmt.Errorf("%w: more than the %d bytes allowed", fetch.ErrTooLong, signing.MaxEnvelopeSize)), true,
			"no honest envelope is that long"},
		{"body cut short", fetchErr(fmt.Errorf("%w: 3 of the 9 bytes declared", fetch.ErrTruncated)), false, "the network may cut a body; the peer is paused instead"},
		{"too slow", fetchErr(fmt.Errorf("%w: 4 bytes in the last 3s", fetch.ErrTooSlow)), false, "a busy peer or link"},
		{"not found", fetchErr(&fetch.StatusError{Code: http.StatusNotFound}), false, "it may have dropped the release since its state"},
		{"timed out", fetchErr(context.DeadlineExceeded), false, "a busy peer or link"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				t.Fatal("the offer was accepted; the case does not build the error it names")
			}
			if got := bannable(tt.err); got != tt.ban {
				t.Errorf("bannable(%v) = %v, want %v: %s", tt.err, got, tt.ban, tt.why)
			}
		})
	}
}

// TestPeerBannedForAlteredManifest: a peer that offers sequence 2 and sends
// it signed by the trusted key but with its payload altered is banned, with
// the reason in GET /v1/status, and not asked again.
func TestPeerBannedForAlteredManifest(t *testing.T) {
	key := liveKey(t)
	now := time.Now()
	root := signedRoot(t, key, now.Add(24*time.Hour))
	dir := t.TempDir()
	in := manifest.Install{Installer: "file", Target: filepath.Join(dir, "app"), Mode: "0644"}

	// Sequence 2 as its publisher signed it, then altered.
	scratch := filepath.Join(t.TempDir(), "origin")
	publishApp(t, scratch, key, root, releasetest.Data(1, 100<<10), "1.0", in, now, time.Hour)
	publishApp(t, scratch, key, root, releasetest.Data(2, 100<<10), "2.0", in, now, time.Hour)
	signed, err := os.ReadFile(filepath.Join(scratch, filepath.FromSlash(manifest.LatestPath("app", "stable"))))
	if err != nil {
		t.Fatal(err)
	}
	env, err := signing.ParseEnvelope(signed)
	if err != nil {
		t.Fatal(err)
	}
	env.Payload = bytes.Replace(env.Payload, []byte(`"2.0"`), []byte(`"6.6"`), 1)
	forged := env.Marshal()

	var manifestAsks atomic.Int64
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case peerproto.StatePath:
			json.NewEncoder(w).Encode(peerproto.State{Proto: peerproto.Proto, AgentID: "00000000000000fe", FleetID: fleettls.OpenID, Version: 1,
				Releases:      []peerproto.ReleaseHave{{ReleaseID: manifest.ChannelID{Product: "app", Channel: "stable"}.Release(2), Chunks: 1, Have: "AQ==", Fetching: "AA=="}},
				Subscriptions: []manifest.ChannelID{{Product: "app", Channel: "stable"}}})
		case "/v1/peer/manifest/app/stable/2":
			manifestAsks.Add(1)
			w.Write(forged)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(peer.Close)
	peerAddr := strings.TrimPrefix(peer.URL, "http://")

	o := origintest.New(t, t.TempDir())
	publishRelease(t, o.Dir(), key, root, "1.0", now, time.Hour, in)
	a := newClockAgent(t, o.URL(), root, dir, now, func(c *config.Config) {
		c.Listen, c.PollInterval, c.BanDuration = nettest.FreeAddr(t), time.Hour, time.Hour
		c.Peers = []string{peerAddr}
	})
	a.clock = swarm.SystemClock{} // the peer manager and the scheduler wait for time to pass
	runAgent(t, a)
	// Through GET /v1/status: Status may not be called before Run has set up peering.
	api := &liveAgent{a: a.Agent, base: "http://" + a.cfg.Listen}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st peerproto.Status
		if b := api.get(t, "/v1/status"); b != nil {
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatal(err)
			}
		}
		i := peerIndex(st.Peers, peerAddr)
		if i >= 0 && st.Peers[i].Banned && cycleDone(st.Subscriptions[0]) {
			if p := st.Peers[i]; !strings.Contains(p.BanReason, "payload or signature altered") {
				t.Errorf("ban reason %q, want it to say the payload or signature was altered", p.BanReason)
			}
			if sub := st.Subscriptions[0]; sub.TrustedSequence != 1 || sub.InstalledVersion != "1.0" {
				t.Errorf("after the forged offer: %+v, want sequence 1, version 1.0 trusted and installed", sub)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("peer not banned within 20 s after %d manifest requests; status %+v", manifestAsks.Load(), st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := manifestAsks.Load(); n != 1 {
		t.Errorf("the forged manifest was asked for %d times, want once", n)
	}
}

// peerIndex returns the index of addr in ps, or -1.
func peerIndex(ps []peerproto.PeerStatus, addr string) int {
	for i, p := range ps {
		if p.Addr == addr {
			return i
		}
	}
	return -1
}
