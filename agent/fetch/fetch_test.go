package fetch

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/manifest"
)

func testPolicy() Policy {
	return Policy{Timeout: 5 * time.Second, MinRate: 0, Window: time.Second,
		Retries: 2, Backoff: time.Millisecond, BackoffMax: 5 * time.Millisecond}
}

func newTestClient(t *testing.T, h http.Handler, p Policy) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL + "/mirror/")
	return New(u, p, Options{Conns: 2}, slog.New(slog.DiscardHandler))
}

func TestFetchChunk(t *testing.T) {
	data := bytes.Repeat([]byte("fleetcast"), 1000)
	c := manifest.Chunk{SHA256: manifest.Sum(data), Size: int64(len(data))}
	path := "/mirror/" + manifest.ChunkPath(c.SHA256)
	tests := []struct {
		name    string
		handler func(w http.ResponseWriter, r *http.Request, n int)
		want    error // nil: success
		tries   int32
	}{
		{"ok", func(w http.ResponseWriter, r *http.Request, n int) { w.Write(data) }, nil, 1},
		{"missing", func(w http.ResponseWriter, r *http.Request, n int) { http.NotFound(w, r) }, fs.ErrNotExist, 1},
		{"server error then ok", func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 1 {
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
			w.Write(data)
		}, nil, 2},
		{"corrupt", func(w http.ResponseWriter, r *http.Request, n int) {
			b := bytes.Clone(data)
			b[7] ^= 1
			w.Write(b)
		}, manifest.ErrMismatch, 3},
		{"longer than declared", func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)+1))
			w.Write(append(bytes.Clone(data), 'x'))
		}, ErrTooLong, 3},
		{"longer without length", func(w http.ResponseWriter, r *http.Request, n int) {
			w.Write(data)
			w.(http.Flusher).Flush() // chunked encoding: no Content-Length
			w.Write([]byte("trailing"))
		}, ErrTooLong, 3},
		{"truncated", func(w http.ResponseWriter, r *http.Request, n int) {
			w.Write(data[:100])
			w.(http.Flusher).Flush()
		}, ErrTruncated, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			o := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != path {
					http.NotFound(w, r)
					return
				}
				tt.handler(w, r, int(n.Add(1)))
			}), testPolicy())
			b, err := o.Chunk(context.Background(), c, make([]byte, c.Size))
			if tt.want == nil {
				if err != nil || !bytes.Equal(b, data) {
					t.Fatalf("fetchChunk = %d bytes, %v; want the chunk", len(b), err)
				}
			} else if !errors.Is(err, tt.want) {
				t.Fatalf("fetchChunk error = %v, want %v", err, tt.want)
			}
			if got := n.Load(); got != tt.tries {
				t.Errorf("%d requests, want %d", got, tt.tries)
			}
		})
	}
}

func TestFetchChunkTooSlow(t *testing.T) {
	data := bytes.Repeat([]byte{1}, 64<<10)
	c := manifest.Chunk{SHA256: manifest.Sum(data), Size: int64(len(data))}
	release := make(chan struct{})
	defer close(release)
	o := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data[:10])
		w.(http.Flusher).Flush()
		select { // stall: the watchdog, not the request timeout, must end it
		case <-release:
		case <-r.Context().Done():
		}
	}), Policy{Timeout: time.Minute, MinRate: 1 << 20, Window: 100 * time.Millisecond, Retries: 0})
	start := time.Now()
	_, err := o.Chunk(context.Background(), c, make([]byte, c.Size))
	if !errors.Is(err, ErrTooSlow) {
		t.Fatalf("error = %v, want ErrTooSlow", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("took %s to give up on a stalled body", el)
	}
}

func TestFetchManifestConditional(t *testing.T) {
	body := []byte(`{"payloadType":"x"}`)
	o := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/mirror/"+manifest.LatestPath("app", "stable") {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", `"v1"`)
		w.Write(body)
	}), testPolicy())
	resp, err := o.Manifest(context.Background(), manifest.ChannelID{Product: "app", Channel: "stable"}, "", "")
	if err != nil || !bytes.Equal(resp.Body, body) || resp.ETag != `"v1"` {
		t.Fatalf("first fetch = %+v, %v", resp, err)
	}
	if _, err := o.Manifest(context.Background(), manifest.ChannelID{Product: "app", Channel: "stable"}, resp.ETag, ""); !errors.Is(err, ErrNotModified) {
		t.Fatalf("conditional fetch error = %v, want ErrNotModified", err)
	}
}

func TestStrongLastModified(t *testing.T) {
	const lm = "Tue, 01 Dec 2026 10:00:00 GMT"
	tests := []struct {
		name, lastModified, date, want string
	}{
		{"older than Date", lm, "Tue, 01 Dec 2026 10:00:01 GMT", lm},
		{"same second as Date", lm, lm, ""},
		{"no Date", lm, "", ""},
		{"bad Date", lm, "yesterday", ""},
		{"bad Last-Modified", "yesterday", "Tue, 01 Dec 2026 10:00:05 GMT", ""},
		{"none", "", "Tue, 01 Dec 2026 10:00:05 GMT", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.lastModified != "" {
				h.Set("Last-Modified", tt.lastModified)
			}
			if tt.date != "" {
				h.Set("Date", tt.date)
			}
			if got := strongLastModified(h); got != tt.want {
				t.Fatalf("strongLastModified = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestFetchManifestReplacedWithinASecond: a file server without ETags (as
// http.FileServer or python's http.server) serves a manifest, which is then
// replaced within the same second; the next fetch must see the new one.
func TestFetchManifestReplacedWithinASecond(t *testing.T) {
	dir := t.TempDir()
	rel := manifest.LatestPath("app", "stable")
	path := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	// Both writes and the fetch between them nearly always fall within one
	// second; when they straddle one, the mtimes differ and the test holds too.
	write := func(body string) {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o := newTestClient(t, http.StripPrefix("/mirror/", http.FileServer(http.Dir(dir))), testPolicy())
	write("one")
	first, err := o.Manifest(context.Background(), manifest.ChannelID{Product: "app", Channel: "stable"}, "", "")
	if err != nil || string(first.Body) != "one" {
		t.Fatalf("first fetch = %+v, %v", first, err)
	}
	write("two")
	second, err := o.Manifest(context.Background(), manifest.ChannelID{Product: "app", Channel: "stable"}, first.ETag, first.LastModified)
	if err != nil || string(second.Body) != "two" {
		t.Fatalf("second fetch = %+v, %v; want the replaced manifest", second, err)
	}
}

func TestFetchManifestTooLarge(t *testing.T) {
	o := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte{' '}, 1<<20)
		for range 30 { // 30 MiB, no Content-Length
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}), Policy{Timeout: 10 * time.Second, Window: time.Second})
	_, err := o.Manifest(context.Background(), manifest.ChannelID{Product: "app", Channel: "stable"}, "", "")
	if !errors.Is(err, ErrTooLong) {
		t.Fatalf("error = %v, want ErrTooLong", err)
	}
}

func TestBackoff(t *testing.T) {
	for n := range 40 {
		d := Backoff(100*time.Millisecond, 5*time.Second, n)
		if d <= 0 || d > 5*time.Second || d > 100*time.Millisecond<<min(n, 30) {
			t.Fatalf("Backoff(%d) = %s", n, d)
		}
	}
}

// TestFetchChunkRateLimited: with a limiter (download_rate), a chunk is
// read in pieces no larger than the burst and never faster than the rate.
func TestFetchChunkRateLimited(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 256<<10)
	c := manifest.Chunk{SHA256: manifest.Sum(body), Size: int64(len(body))}
	o := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}), testPolicy())
	const rate = 1 << 20 // bytes/s; burst a tenth of it
	o.limit = Limiter(rate)
	start := time.Now()
	b, err := o.Chunk(context.Background(), c, make([]byte, len(body)))
	if err != nil || !bytes.Equal(b, body) {
		t.Fatalf("fetchChunk: %v", err)
	}
	// 256 KiB at 1 MiB/s after a burst of 102.4 KiB: at least 0.15 s.
	if d := time.Since(start); d < 140*time.Millisecond {
		t.Errorf("256 KiB at %d B/s took %v; the limit was not applied", rate, d)
	}
}

// TestFetchChunkResumesWithRange: a body that breaks off is continued with
// a Range request for the missing bytes, through a real http.FileServer and
// through servers that ignore or garble ranges.
func TestFetchChunkResumesWithRange(t *testing.T) {
	data := make([]byte, 200_000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	c := manifest.Chunk{SHA256: manifest.Sum(data), Size: int64(len(data))}
	dir := t.TempDir()
	file := filepath.Join(dir, filepath.FromSlash(manifest.ChunkPath(c.SHA256)))
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	files := http.StripPrefix("/mirror/", http.FileServer(http.Dir(dir)))
	tests := []struct {
		name   string
		second func(w http.ResponseWriter, r *http.Request) // the request after the one that broke off
		ranged bool                                         // the second request must carry a Range header
		sent   int                                          // body bytes the server sends in all, at most
	}{
		{"file server honours the range", files.ServeHTTP, true, len(data)},
		{"server ignores the range", func(w http.ResponseWriter, r *http.Request) {
			r.Header.Del("Range")
			files.ServeHTTP(w, r)
		}, true, 70_000 + len(data)},
		{"wrong Content-Range, then whole", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", "bytes 0-9/10")
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[:10])
		}, true, 70_000 + 10 + len(data)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n, sent atomic.Int64
			var ranged atomic.Bool
			o := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				cw := &countWriter{ResponseWriter: w, n: &sent}
				switch n.Add(1) {
				case 1: // breaks off after 70,000 bytes
					w.Header().Set("Content-Length", strconv.Itoa(len(data)))
					cw.Write(data[:70_000])
					panic(http.ErrAbortHandler)
				case 2:
					ranged.Store(r.Header.Get("Range") != "")
					tt.second(cw, r)
				default:
					files.ServeHTTP(cw, r)
				}
			}), testPolicy())
			b, err := o.Chunk(context.Background(), c, make([]byte, c.Size))
			if err != nil || !bytes.Equal(b, data) {
				t.Fatalf("fetchChunk = %d bytes, %v; want the chunk", len(b), err)
			}
			if ranged.Load() != tt.ranged {
				t.Errorf("second request had a Range header: %v, want %v", ranged.Load(), tt.ranged)
			}
			if got := sent.Load(); got > int64(tt.sent) {
				t.Errorf("server sent %d body bytes, want at most %d", got, tt.sent)
			}
		})
	}
}

type countWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n.Add(int64(n))
	return n, err
}

func TestLimiterBurst(t *testing.T) {
	for r, want := range map[int64]int{1: 64 << 10, 64 << 10: 64 << 10, 10 << 20: 1 << 20} {
		if got := Limiter(r).Burst(); got != want {
			t.Errorf("Limiter(%d).Burst() = %d, want %d", r, got, want)
		}
	}
}
