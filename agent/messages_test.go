package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/agent/config"
	"github.com/fleetcast/fleetcast/agent/fleettls"
	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/internal/nettest"
	"github.com/fleetcast/fleetcast/internal/testlog"
	"github.com/fleetcast/fleetcast/manifest"
)

// TestPeerFetchNamesPeerTimeout: a peer that stalls is reported with the
// timeout in force for peers, peer_timeout, not the origin's.
func TestPeerFetchNamesPeerTimeout(t *testing.T) {
	data := bytes.Repeat([]byte{1}, 64<<10)
	c := manifest.Chunk{SHA256: manifest.Sum(data), Size: int64(len(data))}
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data[:10])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(peer.Close)
	cfg := config.Default()
	cfg.PeerTimeout, cfg.RequestTimeout, cfg.MinThroughput = 200*time.Millisecond, time.Hour, 0
	a := &Agent{cfg: &cfg, fleet: fleettls.Open(), log: slog.New(slog.DiscardHandler)}
	o := newPeerManager(a.peerOptions(), nil).fetcher(strings.TrimPrefix(peer.URL, "http://"))
	_, err := o.Chunk(context.Background(), c, make([]byte, c.Size))
	const want = "no complete response within peer_timeout 200ms"
	if err == nil || strings.Count(err.Error(), want) != 1 || strings.Contains(err.Error(), "request_timeout") {
		t.Errorf("error %v, want %q once and no request_timeout", err, want)
	}
}

// TestConfigNameMessage: a subscription's bad name is refused with the same
// rule `fleetcast publish` gives (manifest.NameRule).
func TestConfigNameMessage(t *testing.T) {
	const base = "origin = \"https://example.com/\"\nroot = \"/etc/root.json\"\n[[subscription]]\n"
	_, err := config.Parse([]byte(base + "product = \"roots\"\nchannel = \".x\"\n"))
	for _, want := range []string{`product "roots": want ` + manifest.NameRule, `channel ".x": want ` + manifest.NameRule} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
}

// TestPeerRefusedAtHandshake: a peer of another fleet is reported at WARN,
// once however often it is tried or connects, with the reason in its
// /v1/status entry; other failures stay at DEBUG.
func TestPeerRefusedAtHandshake(t *testing.T) {
	dir := t.TempDir()
	secretA, secretB := filepath.Join(dir, "a.secret"), filepath.Join(dir, "b.secret")
	for _, p := range []string{secretA, secretB} {
		if err := fleettls.NewSecret(p); err != nil {
			t.Fatal(err)
		}
	}
	fleetB, err := fleettls.Load(secretB)
	if err != nil {
		t.Fatal(err)
	}
	// A peer of fleet B, counting the handshakes it fails.
	var handshakes atomic.Int32
	peer := httptest.NewUnstartedServer(http.NotFoundHandler())
	peer.TLS = fleetB.ServerTLS()
	peer.Config.ErrorLog = log.New(writerFunc(func(p []byte) (int, error) {
		if bytes.Contains(p, []byte("TLS handshake error")) {
			handshakes.Add(1)
		}
		return len(p), nil
	}), "", 0)
	peer.StartTLS()
	t.Cleanup(peer.Close)
	peerAddr := peer.Listener.Addr().String()

	var logs testlog.Buffer
	cfg := config.Default()
	cfg.DataDir, cfg.Root, cfg.Origin = filepath.Join(dir, "data"), filepath.Join(dir, "root.json"), "http://127.0.0.1:1/"
	cfg.Listen, cfg.MDNS, cfg.PollInterval = nettest.FreeAddr(t), false, time.Hour
	cfg.FleetSecretFile, cfg.Peers, cfg.Retries = secretA, []string{peerAddr}, 0
	cfg.Subscriptions = []manifest.ChannelID{{Product: "app", Channel: "stable"}}
	if err := os.WriteFile(cfg.Root, liveRoot(t, liveKey(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := New(&cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	runAgent(t, a)
	// The status API speaks TLS with the fleet's certificate; curl -k would too.
	status := func() (peerproto.Status, bool) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := c.Get("https://" + cfg.Listen + "/v1/status")
		if err != nil {
			return peerproto.Status{}, false
		}
		defer resp.Body.Close()
		var st peerproto.Status
		return st, json.NewDecoder(resp.Body).Decode(&st) == nil
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, ok := status()
		if i := peerIndex(st.Peers, peerAddr); ok && i >= 0 && handshakes.Load() >= 3 {
			if e := st.Peers[i].Error; !strings.Contains(e, "not this fleet's key") {
				t.Errorf("peer's status error %q, want it to say the peer is not of this fleet", e)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("within 20 s: %d handshakes refused, status %+v", handshakes.Load(), st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A host of fleet B connecting to this agent is refused by its own
	// check of this agent's certificate, again and again.
	for range 3 {
		if conn, err := tls.Dial("tcp", cfg.Listen, fleetB.ClientTLS()); err == nil {
			conn.Close()
			t.Fatal("a client of another fleet completed the handshake")
		}
	}
	warned := func(peer string) int {
		n := 0
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, "peer refused at the TLS handshake") && strings.Contains(line, peer) {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); warned("peer=127.0.0.1:") < 2; {
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := warned("peer=" + peerAddr); n != 1 {
		t.Errorf("%d warnings of the refused peer after %d handshakes, want 1:\n%s", n, handshakes.Load(), logs.String())
	}
	if n := warned("peer=127.0.0.1:") - warned("peer="+peerAddr); n != 1 {
		t.Errorf("%d warnings of the refused client after 3 connections, want 1:\n%s", n, logs.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestWarnLimiter: one warning per key per interval, with the count of
// those held back; a bounded number of keys.
func TestWarnLimiter(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	l := newWarnLimiter(time.Minute)
	for i, step := range []struct {
		key    string
		at     time.Duration
		ok     bool
		held   int
		reason string
	}{
		{"a", 0, true, 0, "first of a"},
		{"a", time.Second, false, 0, "within the minute"},
		{"b", time.Second, true, 0, "another key"},
		{"a", 59 * time.Second, false, 0, "still within the minute"},
		{"a", time.Minute, true, 2, "a minute after the last logged, with the two held back"},
		{"a", time.Minute + time.Second, false, 0, "within the new minute"},
	} {
		if ok, held := l.allow(step.key, t0.Add(step.at)); ok != step.ok || held != step.held {
			t.Errorf("step %d (%s): allow = %v, %d; want %v, %d", i, step.reason, ok, held, step.ok, step.held)
		}
	}
	l = newWarnLimiter(time.Minute)
	for i := range maxWarnKeys {
		l.allow(strconv.Itoa(i), t0)
	}
	if ok, _ := l.allow("new", t0.Add(time.Second)); ok {
		t.Error("a new key past maxWarnKeys was let through within the interval")
	}
	if ok, _ := l.allow("new", t0.Add(time.Minute)); !ok || len(l.keys) != 1 {
		t.Errorf("after the interval: allowed %v, %d keys kept; want the old keys forgotten", ok, len(l.keys))
	}
}

// TestConfigWarnings: an allowed_targets prefix that is a file system root
// or a system-wide directory is warned about, saying what it allows.
func TestConfigWarnings(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix paths")
	}
	for _, tc := range []struct {
		prefix, want string // want: "" for no warning
	}{
		{"/", "any file on this machine"},
		{"//", "any file on this machine"},
		{"/etc", "configuration"},
		{"/etc/", "configuration"},
		{"/usr/", "programs and libraries"},
		{"/bin/", "programs"},
		{"/boot/", "kernel"},
		{"/var/", "this agent's own"},
		{"/lib/", "libraries"},
		{"/etc/myapp/", ""},
		{"/opt/myapp/", ""},
		{"/usr/local/bin/", ""},
		{"/var/lib/myapp/", ""},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			c := config.Config{AllowedTargets: []string{"/opt/other/", tc.prefix}}
			w := c.Warnings()
			if tc.want == "" {
				if len(w) != 0 {
					t.Errorf("warnings %q, want none", w)
				}
				return
			}
			if len(w) != 1 || !strings.Contains(w[0], strconv.Quote(tc.prefix)) || !strings.Contains(w[0], tc.want) {
				t.Errorf("warnings %q, want one naming %q and saying %q", w, tc.prefix, tc.want)
			}
		})
	}
}

// mkfifo makes a named pipe at path, or skips the test.
func mkfifo(t *testing.T, path string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("no named pipes in the file system")
	}
	if out, err := exec.Command("mkfifo", path).CombinedOutput(); err != nil {
		t.Skipf("mkfifo: %v %s", err, out)
	}
}

// TestLoadConfigNotRegular: a configuration path that names a named pipe, a
// directory or a device is refused at once, saying what it is.
func TestLoadConfigNotRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "agent.toml")
	mkfifo(t, fifo)
	for _, tc := range []struct{ path, want string }{
		{fifo, "is a named pipe (FIFO), not a regular file"},
		{dir, "is a directory, not a regular file"},
		{"/dev/zero", "is a device, not a regular file"},
	} {
		t.Run(filepath.Base(tc.path), func(t *testing.T) {
			type result struct {
				c   *config.Config
				err error
			}
			done := make(chan result, 1)
			go func() {
				c, err := config.Load(tc.path)
				done <- result{c, err}
			}()
			select {
			case r := <-done:
				if r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
					t.Errorf("LoadConfig(%s) = %v; want %q", tc.path, r.err, tc.want)
				}
			case <-time.After(10 * time.Second):
				if tc.path == fifo { // let the blocked open through
					if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
						f.Close()
					}
				}
				t.Fatalf("LoadConfig(%s) still blocked after 10 s", tc.path)
			}
		})
	}
}

// TestRefusedHandshake: which of the API server's handshake errors are a
// peer refused for its fleet key, and what the warning says it means.
func TestRefusedHandshake(t *testing.T) {
	for _, tc := range []struct{ reason, want string }{
		{"remote error: tls: bad certificate", "it holds another fleet secret"},
		{"fleet 0123456789abcdef: " + fleettls.ErrNotFleet.Error(), "this agent refused the peer's certificate"},
		{"tls: invalid signature by the client certificate: ed25519 verification failure", "a copy, not a member"},
		{"EOF", ""},
		{"client sent an HTTP request to an HTTPS server", ""},
	} {
		if got := refusedHandshake(tc.reason); tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("refusedHandshake(%q) = %q, want %q", tc.reason, got, tc.want)
		}
	}
}
