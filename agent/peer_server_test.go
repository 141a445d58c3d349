package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/fleetcast/fleetcast/agent/config"
	"github.com/fleetcast/fleetcast/agent/fetch"
	"github.com/fleetcast/fleetcast/agent/fleettls"
	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/agent/store"
	"github.com/fleetcast/fleetcast/agent/swarm"
	"github.com/fleetcast/fleetcast/internal/clip"
	"github.com/fleetcast/fleetcast/internal/releasetest"
	"github.com/fleetcast/fleetcast/manifest"
)

// peerFixture is a peer server over a store that holds release 1 of "app"
// complete and release 2 partial (its even chunks), served by httptest.
type peerFixture struct {
	store        *store.Store
	srv          *peerServer
	ts           *httptest.Server
	client       *http.Client
	m1, m2       *manifest.Manifest
	data1, data2 []byte
}

var (
	testPeerID   = "0123456789abcdef"
	fleetSecretA = bytes.Repeat([]byte("a"), fleettls.MinSecretSize)
	fleetSecretB = bytes.Repeat([]byte("b"), fleettls.MinSecretSize)
)

// newPeerFixture builds the agent by hand with exactly what peerServer
// uses. A closed fleet serves TLS as the agent does, with an optional
// client certificate; the fixture's client is then the fleet's.
func newPeerFixture(t *testing.T, fleet *fleettls.Fleet, maxUploads int, uploadRate int64) *peerFixture {
	t.Helper()
	s, src := store.Open(filepath.Join(t.TempDir(), store.ReleasesDir)), releasetest.NewSource()
	f := &peerFixture{data1: releasetest.Data(21, 300<<10), data2: releasetest.Data(22, 300<<10)}
	f.m1 = releasetest.Release(t, 1, f.data1, src)
	dir1 := s.ReleaseDir(manifest.ChannelID{Product: "app", Channel: "stable"}.Release(1))
	if err := os.MkdirAll(dir1, 0o755); err != nil {
		t.Fatal(err)
	}
	releasetest.WriteManifest(t, dir1, f.m1)
	if _, err := swarm.Assemble(context.Background(), s, f.m1, dir1, src, 3, nil, nil, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	f.m2 = releasetest.Release(t, 2, f.data2, src)
	dir2 := s.ReleaseDir(manifest.ChannelID{Product: "app", Channel: "stable"}.Release(2))
	if err := os.MkdirAll(dir2, 0o755); err != nil {
		t.Fatal(err)
	}
	releasetest.WriteManifest(t, dir2, f.m2)
	if err := os.WriteFile(filepath.Join(dir2, store.PartFile), f.data2, 0o644); err != nil {
		t.Fatal(err)
	}
	s.Held.Scan(s.Dir) // release 2, written by hand, is held from here
	for i := 0; i < len(f.m2.Chunks); i += 2 {
		s.Held.Mark(manifest.ChannelID{Product: "app", Channel: "stable"}.Release(2), i)
	}

	cfg := &config.Config{PeerConfig: config.PeerConfig{MaxUploads: maxUploads, UploadRate: uploadRate}}
	f.store = s
	f.srv = newPeerServer(cfg, testPeerID, fleet, s.Held, slog.New(slog.DiscardHandler))
	mux := http.NewServeMux()
	f.srv.register(mux)
	f.ts = httptest.NewUnstartedServer(mux)
	f.ts.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes
	if conf := fleet.ServerTLSOptionalClient(); conf != nil {
		f.ts.TLS = conf
		f.ts.StartTLS()
	} else {
		f.ts.Start()
	}
	t.Cleanup(f.ts.Close)
	f.client = testClient(t, fleet.Transport(nil))
	return f
}

// testClient is a client over tr whose timeout bounds a failing test.
func testClient(t *testing.T, tr *http.Transport) *http.Client {
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 2 * peerproto.LongPoll * time.Second}
}

// get fetches path and returns the response with its body read.
func (f *peerFixture) get(t *testing.T, c *http.Client, path string) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Get(f.ts.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", path, err)
	}
	return resp, b
}

// chunkOf returns chunk i of a release's data.
func chunkOf(m *manifest.Manifest, data []byte, i int) []byte {
	off := m.Offsets()[i]
	return data[off : off+m.Chunks[i].Size]
}

func wantStatus(t *testing.T, resp *http.Response, body []byte, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %s (%q), want %d", resp.Request.URL.Path, resp.Status, clip.String(string(body), 200), want)
	}
}

// parseStateResponse GETs a state at path and parses it.
func parseStateResponse(t *testing.T, path string, f *peerFixture, c *http.Client) *peerproto.State {
	t.Helper()
	resp, body := f.get(t, c, path)
	wantStatus(t, resp, body, http.StatusOK)
	st, _, err := peerproto.ParseState(body)
	if err != nil {
		t.Fatalf("state response: %v\n%s", err, body)
	}
	return st
}

func TestPeerServerState(t *testing.T) {
	f := newPeerFixture(t, fleettls.Open(), 4, 0)
	resp, body := f.get(t, f.client, peerproto.StatePath)
	wantStatus(t, resp, body, http.StatusOK)
	st, _, err := peerproto.ParseState(body)
	if err != nil {
		t.Fatalf("state: %v\n%s", err, body)
	}
	for h, want := range map[string]string{peerproto.ProtoHeader: peerproto.Proto, peerproto.AgentHeader: testPeerID,
		peerproto.FleetHeader: fleettls.OpenID, "Content-Type": "application/json"} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("header %s: %q, want %q", h, got, want)
		}
	}
	if st.AgentID != testPeerID || st.FleetID != fleettls.OpenID {
		t.Errorf("state of agent %q fleet %q", st.AgentID, st.FleetID)
	}
	v, rels := f.store.Held.Snapshot()
	if st.Version != v || len(st.Releases) != 2 {
		t.Fatalf("state version %d with %d releases, want version %d with releases 1 and 2", st.Version, len(st.Releases), v)
	}
	for i, r := range st.Releases {
		if r != rels[i] {
			t.Errorf("release %d: %+v, holdings %+v", i, r, rels[i])
		}
	}
	all := make([]bool, len(f.m1.Chunks))
	for i := range all {
		all[i] = true
	}
	even := make([]bool, len(f.m2.Chunks))
	for i := range even {
		even[i] = i%2 == 0
	}
	if st.Releases[0].Have != peerproto.EncodeBitmap(all) || st.Releases[1].Have != peerproto.EncodeBitmap(even) {
		t.Errorf("state bitmaps %+v, want release 1 whole and release 2's even chunks", st.Releases)
	}
}

func TestPeerServerStateLongPoll(t *testing.T) {
	f := newPeerFixture(t, fleettls.Open(), 4, 0)
	v := parseStateResponse(t, peerproto.StatePath, f, f.client).Version

	// A version behind the current one answers at once.
	if st := parseStateResponse(t, peerproto.StatePath+"?after="+strconv.FormatUint(v-1, 10), f, f.client); st.Version != v {
		t.Errorf("after=%d: version %d, want %d", v-1, st.Version, v)
	}

	type result struct {
		resp *http.Response
		body []byte
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		resp, err := f.client.Get(f.ts.URL + peerproto.StatePath + "?after=" + strconv.FormatUint(v, 10))
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		ch <- result{resp, b, err}
	}()
	select {
	case r := <-ch:
		t.Fatalf("after=%d answered before any change: %v %s", v, r.err, r.body)
	default:
	}
	f.store.Held.Mark(manifest.ChannelID{Product: "app", Channel: "stable"}.Release(2), 1)
	var r result
	select {
	case r = <-ch:
	case <-time.After(peerproto.LongPoll * time.Second / 2):
		t.Fatal("long poll did not answer after the holdings changed")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	st, maps, err := peerproto.ParseState(r.body)
	if err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	if st.Version <= v || !peerproto.BitSet(maps[1].Have, 1) {
		t.Errorf("long poll: version %d (was %d), release 2 chunk 1 held: %v; want the new state", st.Version, v, peerproto.BitSet(maps[1].Have, 1))
	}

	for _, bad := range []string{"x", "-1", "1.5", "18446744073709551616"} {
		resp, body := f.get(t, f.client, peerproto.StatePath+"?after="+bad)
		wantStatus(t, resp, body, http.StatusBadRequest)
	}
}

// TestPeerServerStateQuiet: a follower's long-poll with wait=1&quiet=1 is
// held about a second and answered 304 without a body when nothing
// changed, and with the new state when something did; bad waits are 400.
func TestPeerServerStateQuiet(t *testing.T) {
	f := newPeerFixture(t, fleettls.Open(), 4, 0)
	v := parseStateResponse(t, peerproto.StatePath, f, f.client).Version
	quiet := fmt.Sprintf("%s?after=%d&%s=1&%s=1", peerproto.StatePath, v, peerproto.WaitParam, peerproto.QuietParam)

	start := time.Now()
	resp, body := f.get(t, f.client, quiet)
	wantStatus(t, resp, body, http.StatusNotModified)
	if len(body) != 0 || time.Since(start) < 900*time.Millisecond {
		t.Errorf("quiet long-poll: %d bytes after %s; want none, after the 1 s wait", len(body), time.Since(start))
	}

	// Without quiet, the same wait ends with the state again.
	resp, body = f.get(t, f.client, fmt.Sprintf("%s?after=%d&%s=1", peerproto.StatePath, v, peerproto.WaitParam))
	wantStatus(t, resp, body, http.StatusOK)

	// A change during the wait is sent.
	f.store.Held.Mark(manifest.ChannelID{Product: "app", Channel: "stable"}.Release(2), 1)
	if st := parseStateResponse(t, quiet, f, f.client); st.Version <= v {
		t.Errorf("quiet long-poll after a change: version %d, want more than %d", st.Version, v)
	}

	for _, bad := range []string{"0", "-1", "x", strconv.Itoa(peerproto.MaxLongPoll + 1)} {
		resp, body := f.get(t, f.client, fmt.Sprintf("%s?after=%d&%s=%s", peerproto.StatePath, v, peerproto.WaitParam, bad))
		wantStatus(t, resp, body, http.StatusBadRequest)
	}
}

func TestPeerServerStateManyReleases(t *testing.T) {
	f := newPeerFixture(t, fleettls.Open(), 4, 0)
	one := manifest.Chunk{SHA256: manifest.Sum([]byte("x")), Size: 1}
	for i := range peerproto.MaxReleases + 6 {
		f.store.Held.Add(manifest.ChannelID{Product: "zz", Channel: "stable"}.Release(uint64(i+1)), t.TempDir(), &manifest.Manifest{Product: "zz", Channel: "stable", Sequence: uint64(i + 1), Chunks: []manifest.Chunk{one}}, nil, true)
	}
	st := parseStateResponse(t, peerproto.StatePath, f, f.client)
	if len(st.Releases) != peerproto.MaxReleases || st.Releases[len(st.Releases)-1].Sequence != peerproto.MaxReleases+6 {
		t.Errorf("state lists %d releases, want the last %d", len(st.Releases), peerproto.MaxReleases)
	}
}

func TestPeerServerManifest(t *testing.T) {
	f := newPeerFixture(t, fleettls.Open(), 4, 0)
	for _, seq := range []string{"1", "2"} {
		want, err := os.ReadFile(filepath.Join(f.store.Dir, "app", "stable", seq, store.ManifestFile))
		if err != nil {
			t.Fatal(err)
		}
		resp, body := f.get(t, f.client, peerproto.ManifestPath+"app/stable/"+seq)
		wantStatus(t, resp, body, http.StatusOK)
		if !bytes.Equal(body, want) || resp.ContentLength != int64(len(want)) {
			t.Errorf("manifest %s: %d bytes (Content-Length %d), want the stored %d", seq, len(body), resp.ContentLength, len(want))
		}
	}
	tests := []struct {
		path string
		want int
	}{
		{"app/stable/3", http.StatusNotFound},
		{"app/beta/1", http.StatusNotFound},
		{"other/stable/1", http.StatusNotFound},
		{"app/stable/0", http.StatusNotFound},
		{"App/stable/1", http.StatusBadRequest},
		{"app/st%20able/1", http.StatusBadRequest},
		{"roots/stable/1", http.StatusBadRequest},
		{"app/stable/one", http.StatusBadRequest},
		{"app/stable/-1", http.StatusBadRequest},
		{"app/stable/18446744073709551616", http.StatusBadRequest},
	}
	for _, tt := range tests {
		resp, body := f.get(t, f.client, peerproto.ManifestPath+tt.path)
		wantStatus(t, resp, body, tt.want)
	}
}

func TestPeerServerChunk(t *testing.T) {
	f := newPeerFixture(t, fleettls.Open(), 4, 0)
	var served, bytesServed int64
	for _, c := range []struct {
		name string
		m    *manifest.Manifest
		data []byte
		idx  int
	}{
		{"complete release", f.m1, f.data1, 0},
		{"complete release, last", f.m1, f.data1, len(f.m1.Chunks) - 1},
		{"partial release", f.m2, f.data2, 2},
	} {
		want := chunkOf(c.m, c.data, c.idx)
		resp, body := f.get(t, f.client, peerproto.ChunkPath+c.m.Chunks[c.idx].SHA256.String())
		wantStatus(t, resp, body, http.StatusOK)
		if !bytes.Equal(body, want) {
			t.Errorf("%s: chunk %d: %d bytes differ from the release's %d", c.name, c.idx, len(body), len(want))
		}
		if resp.ContentLength != int64(len(want)) || resp.Header.Get("Content-Length") != strconv.Itoa(len(want)) {
			t.Errorf("%s: Content-Length %q, want %d", c.name, resp.Header.Get("Content-Length"), len(want))
		}
		served++
		bytesServed += int64(len(want))
	}
	for _, tt := range []struct {
		digest string
		want   int
	}{
		{f.m2.Chunks[1].SHA256.String(), http.StatusNotFound}, // not held: odd chunk of release 2
		{manifest.Sum([]byte("nothing")).String(), http.StatusNotFound},
		{"xyz", http.StatusBadRequest},
		{fmt.Sprintf("%X", f.m1.Chunks[0].SHA256[:]), http.StatusBadRequest},
		{f.m1.Chunks[0].SHA256.String() + "00", http.StatusBadRequest},
	} {
		resp, body := f.get(t, f.client, peerproto.ChunkPath+tt.digest)
		wantStatus(t, resp, body, tt.want)
	}
	// The handler counts after the body is sent; Close waits for handlers.
	f.ts.Close()
	if f.srv.served.Load() != served || f.srv.uploaded.Load() != bytesServed {
		t.Errorf("counted %d chunks, %d bytes; want %d, %d", f.srv.served.Load(), f.srv.uploaded.Load(), served, bytesServed)
	}
}

func TestPeerServerChunkBusy(t *testing.T) {
	const maxUploads = 3
	f := newPeerFixture(t, fleettls.Open(), maxUploads, 0)
	path := peerproto.ChunkPath + f.m1.Chunks[0].SHA256.String()
	if cap(f.srv.uploads) != maxUploads {
		t.Fatalf("upload semaphore of %d, want max_uploads %d", cap(f.srv.uploads), maxUploads)
	}
	// Hold every upload slot, as max_uploads requests being served would.
	for range maxUploads {
		f.srv.uploads <- struct{}{}
	}
	resp, body := f.get(t, f.client, path)
	wantStatus(t, resp, body, http.StatusServiceUnavailable)
	if resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	// State and manifests are not uploads; a bad digest is refused first.
	resp, body = f.get(t, f.client, peerproto.StatePath)
	wantStatus(t, resp, body, http.StatusOK)
	resp, body = f.get(t, f.client, peerproto.ManifestPath+"app/stable/1")
	wantStatus(t, resp, body, http.StatusOK)
	resp, body = f.get(t, f.client, peerproto.ChunkPath+"xyz")
	wantStatus(t, resp, body, http.StatusBadRequest)

	<-f.srv.uploads
	resp, body = f.get(t, f.client, path)
	wantStatus(t, resp, body, http.StatusOK)
	f.ts.Close() // the slot is released after the body is sent; Close waits for handlers
	if n := len(f.srv.uploads); n != maxUploads-1 {
		t.Errorf("%d upload slots held after the request, want %d: the slot was not released", n, maxUploads-1)
	}
}

func TestPeerServerChunkRateLimited(t *testing.T) {
	f := newPeerFixture(t, fleettls.Open(), 4, 1<<30)
	if f.srv.limit == nil || f.srv.limit.Burst() != fetch.Limiter(1<<30).Burst() {
		t.Fatalf("upload_rate %d: limiter %v", int64(1<<30), f.srv.limit)
	}
	want := chunkOf(f.m1, f.data1, 1)
	resp, body := f.get(t, f.client, peerproto.ChunkPath+f.m1.Chunks[1].SHA256.String())
	wantStatus(t, resp, body, http.StatusOK)
	if !bytes.Equal(body, want) {
		t.Errorf("rate limited chunk: %d bytes differ from the release's %d", len(body), len(want))
	}
}

func TestPeerServerClosedFleet(t *testing.T) {
	fleet, err := fleettls.FromSecret(fleetSecretA)
	if err != nil {
		t.Fatal(err)
	}
	other, err := fleettls.FromSecret(fleetSecretB)
	if err != nil {
		t.Fatal(err)
	}
	f := newPeerFixture(t, fleet, 4, 0)
	paths := []string{peerproto.StatePath, peerproto.ManifestPath + "app/stable/1", peerproto.ChunkPath + f.m1.Chunks[0].SHA256.String()}

	t.Run("no certificate", func(t *testing.T) {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} // no certificate to offer
		c := testClient(t, tr)
		for _, p := range paths {
			resp, body := f.get(t, c, p)
			wantStatus(t, resp, body, http.StatusForbidden)
			if got := resp.Header.Get(peerproto.FleetHeader); got != fleet.ID() {
				t.Errorf("%s: fleet header %q, want %q", p, got, fleet.ID())
			}
		}
		if f.srv.served.Load() != 0 {
			t.Errorf("%d chunks served to a client without the fleet certificate", f.srv.served.Load())
		}
	})
	t.Run("fleet member", func(t *testing.T) {
		for _, p := range paths {
			resp, body := f.get(t, f.client, p)
			wantStatus(t, resp, body, http.StatusOK)
		}
		if !bytes.Equal(mustGet(t, f, peerproto.ChunkPath+f.m1.Chunks[0].SHA256.String()), chunkOf(f.m1, f.data1, 0)) {
			t.Error("chunk over fleet TLS differs")
		}
	})
	t.Run("other fleet", func(t *testing.T) {
		c := testClient(t, other.Transport(nil))
		resp, err := c.Get(f.ts.URL + peerproto.StatePath)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("a client of another fleet connected: %s", resp.Status)
		}
	})
}

func mustGet(t *testing.T, f *peerFixture, path string) []byte {
	t.Helper()
	resp, body := f.get(t, f.client, path)
	wantStatus(t, resp, body, http.StatusOK)
	return body
}

// pieceWriter records the size of every Write.
type pieceWriter struct {
	bytes.Buffer
	pieces []int
	fail   int // fail the Write after this many pieces, when > 0
}

var errPieceWriter = errors.New("piece writer full")

func (w *pieceWriter) Write(p []byte) (int, error) {
	if w.fail > 0 && len(w.pieces) == w.fail {
		return 0, errPieceWriter
	}
	w.pieces = append(w.pieces, len(p))
	return w.Buffer.Write(p)
}

func TestLimitedWriter(t *testing.T) {
	const burst = 1000
	data := releasetest.Data(23, 10*burst+500)
	newLimiter := func() *rate.Limiter { return rate.NewLimiter(rate.Limit(1<<40), burst) }

	t.Run("pieces of at most burst", func(t *testing.T) {
		var w pieceWriter
		lw := &limitedWriter{ctx: t.Context(), w: &w, l: newLimiter()}
		for _, part := range [][]byte{data[:10], data[10 : 3*burst+1], data[3*burst+1:]} {
			if n, err := lw.Write(part); n != len(part) || err != nil {
				t.Fatalf("Write of %d bytes: %d, %v", len(part), n, err)
			}
		}
		if !bytes.Equal(w.Bytes(), data) {
			t.Fatal("written bytes differ")
		}
		total := 0
		for _, p := range w.pieces {
			if p < 1 || p > burst {
				t.Errorf("piece of %d bytes, burst %d", p, burst)
			}
			total += p
		}
		if total != len(data) || len(w.pieces) != 1+3+8 {
			t.Errorf("%d pieces of %d bytes in all: %v", len(w.pieces), total, w.pieces)
		}
	})
	t.Run("write error", func(t *testing.T) {
		w := pieceWriter{fail: 2}
		lw := &limitedWriter{ctx: t.Context(), w: &w, l: newLimiter()}
		if n, err := lw.Write(data); n != 2*burst || !errors.Is(err, errPieceWriter) {
			t.Errorf("Write: %d, %v; want %d, the writer's error", n, err, 2*burst)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		var w pieceWriter
		lw := &limitedWriter{ctx: ctx, w: &w, l: newLimiter()}
		if n, err := lw.Write(data); n != 0 || !errors.Is(err, context.Canceled) || w.Len() != 0 {
			t.Errorf("Write after cancel: %d, %v, %d bytes written", n, err, w.Len())
		}
	})
}
