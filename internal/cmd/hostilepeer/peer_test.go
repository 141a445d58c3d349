package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/signing"
)

const (
	testChunks    = 10
	testChunkSize = 5000
)

// testOrigin writes an origin directory holding release 3 of app/stable:
// testChunks chunks and an unsigned envelope (the peer does not verify).
func testOrigin(t *testing.T) (dir string, chunks [][]byte, env []byte) {
	t.Helper()
	dir = t.TempDir()
	var artifact []byte
	m := &manifest.Manifest{Product: "app", Channel: "stable", Sequence: 3, Version: "1.3",
		Created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Expires: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC),
		Chunking: manifest.Chunking{Algorithm: manifest.ChunkingFastCDC, Min: 4096, Avg: 8192, Max: 16384},
		Install:  manifest.Install{Installer: "file", Target: "/opt/app/app", Mode: "0755"}}
	for i := range testChunks {
		c := bytes.Repeat([]byte{byte(i + 1)}, testChunkSize)
		chunks = append(chunks, c)
		artifact = append(artifact, c...)
		m.Chunks = append(m.Chunks, manifest.Chunk{SHA256: manifest.Sum(c), Size: testChunkSize})
		writeFile(t, filepath.Join(dir, filepath.FromSlash(manifest.ChunkPath(manifest.Sum(c)))), c)
	}
	m.Artifact = manifest.Artifact{Name: "app", Size: int64(len(artifact)), SHA256: manifest.Sum(artifact)}
	payload, err := manifest.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	env = signing.NewEnvelope(manifest.PayloadType, payload).Marshal()
	writeFile(t, filepath.Join(dir, filepath.FromSlash(manifest.LatestPath("app", "stable"))), env)
	return dir, chunks, env
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func testPeer(t *testing.T, mode string) (*httptest.Server, [][]byte, []byte) {
	t.Helper()
	dir, chunks, env := testOrigin(t)
	rel, err := loadRelease(dir, "app", "stable")
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{origin: dir, mode: mode, agentID: "0123456789abcdef", fleetID: "open",
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	p.rel.Store(rel)
	srv := httptest.NewServer(p.handler())
	t.Cleanup(srv.Close)
	return srv, chunks, env
}

func get(t *testing.T, ctx context.Context, url string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for h, want := range map[string]string{peerproto.ProtoHeader: peerproto.Proto, peerproto.AgentHeader: "0123456789abcdef", peerproto.FleetHeader: "open"} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s: header %s = %q, want %q", url, h, got, want)
		}
	}
	return resp, body
}

func TestStateClaimsEveryChunk(t *testing.T) {
	srv, _, env := testPeer(t, modeCorrupt)
	resp, body := get(t, context.Background(), srv.URL+"/v1/peer/state")
	var st peerproto.State
	if err := json.Unmarshal(body, &st); err != nil || resp.StatusCode != 200 {
		t.Fatalf("state: %d %v\n%s", resp.StatusCode, err, body)
	}
	// The agents' own parser is the judge of the protocol.
	if _, _, err := peerproto.ParseState(body); err != nil {
		t.Errorf("peerproto.ParseState refuses the hostile peer's state: %v\n%s", err, body)
	}
	if st.Proto != peerproto.Proto || st.Version != 4 || len(st.Releases) != 1 { // sequence 3, plus one
		t.Fatalf("state %+v", st)
	}
	r := st.Releases[0]
	have, _ := base64.StdEncoding.DecodeString(r.Have)
	fetching, _ := base64.StdEncoding.DecodeString(r.Fetching)
	if r.Product != "app" || r.Channel != "stable" || r.Sequence != 3 || r.Chunks != testChunks ||
		!bytes.Equal(have, []byte{0xff, 0x03}) || !bytes.Equal(fetching, []byte{0, 0}) {
		t.Errorf("release %+v (have %x, fetching %x), want app/stable/3, %d chunks, have ff03, fetching 0000", r, have, fetching, testChunks)
	}

	resp, body = get(t, context.Background(), srv.URL+"/v1/peer/manifest/app/stable/3")
	if resp.StatusCode != 200 || !bytes.Equal(body, env) {
		t.Errorf("manifest: %d, %d bytes; want 200 and the envelope", resp.StatusCode, len(body))
	}
	if resp, _ := get(t, context.Background(), srv.URL+"/v1/peer/manifest/app/stable/2"); resp.StatusCode != 404 {
		t.Errorf("manifest of another sequence: %d, want 404", resp.StatusCode)
	}
}

func TestHaveAll(t *testing.T) {
	for n, want := range map[int]string{1: "AQ==", 8: "/w==", 9: "/wE=", 16: "//8="} {
		if got := bitmap(n, true); got != want {
			t.Errorf("bitmap(%d, true) = %q, want %q", n, got, want)
		}
	}
}

func TestLongPollHonoursCancel(t *testing.T) {
	srv, _, _ := testPeer(t, modeCorrupt)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/peer/state?after=4", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("long poll answered %d at once; want it held", resp.StatusCode)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancelled long poll took %v", d)
	}
	resp, _ := get(t, context.Background(), srv.URL+"/v1/peer/state?after=0")
	if resp.StatusCode != 200 {
		t.Errorf("state after=0: %d, want 200 at once", resp.StatusCode)
	}
}

func TestBadChunks(t *testing.T) {
	for _, mode := range []string{modeCorrupt, modeWrongSize, modeSlow} {
		t.Run(mode, func(t *testing.T) {
			srv, chunks, _ := testPeer(t, mode)
			c := chunks[4]
			url := srv.URL + "/v1/peer/chunk/" + manifest.Sum(c).String()
			if mode == modeSlow {
				// Read the first 3 bytes, then hang up: they must be true
				// and take at least two slowIntervals (a lower bound,
				// which a loaded machine cannot break).
				start := time.Now()
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				got := make([]byte, 3)
				if _, err := io.ReadFull(resp.Body, got); err != nil {
					t.Fatalf("slow: reading the first 3 bytes: %v", err)
				}
				if d := time.Since(start); resp.ContentLength != testChunkSize || !bytes.HasPrefix(c, got) || d < 2*slowInterval {
					t.Errorf("slow: Content-Length %d, first bytes %x in %v; want %d declared, the chunk's first bytes, in at least %v",
						resp.ContentLength, got, d, testChunkSize, 2*slowInterval)
				}
				return
			}
			resp, got := get(t, context.Background(), url)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Length") != strconv.Itoa(len(got)) {
				t.Fatalf("%d, Content-Length %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Length"), len(got))
			}
			switch mode {
			case modeCorrupt:
				if len(got) != len(c) || bytes.Equal(got, c) || manifest.Sum(got) == manifest.Sum(c) {
					t.Error("corrupt: want the chunk's size with other bytes")
				}
			case modeWrongSize:
				if len(got) != len(c)+wrongSizeExtra || !bytes.HasPrefix(got, c) {
					t.Errorf("wrong-size: %d bytes, want the chunk and %d more", len(got), wrongSizeExtra)
				}
			}
			unknown := manifest.Sum([]byte("not in the release")).String()
			if resp, _ := get(t, context.Background(), srv.URL+"/v1/peer/chunk/"+unknown); resp.StatusCode != 404 {
				t.Errorf("unknown chunk: %d, want 404", resp.StatusCode)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-origin", "o", "-product", "p", "-channel", "c", "-listen", "1.2.3.4:5", "-mode", "nice"},
		{"-origin", "o", "-product", "p", "-channel", "c", "-listen", "1.2.3.4:5", "extra"},
	} {
		var stderr bytes.Buffer
		if code := run(args, &stderr); code != 2 {
			t.Errorf("run %q: exit %d, want 2\n%s", args, code, stderr.String())
		}
	}
}
