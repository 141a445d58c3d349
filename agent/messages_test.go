package agent

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/agent/fleettls"
	"github.com/fleetcast/fleetcast/manifest"
)

// TestFetchMessages: what a failed chunk fetch says, as an operator reads it
// in the log: each cause once, the limit that was in force, a wrong range
// as a wrong range, and a declared length only where one was declared.
func TestFetchMessages(t *testing.T) {
	data := bytes.Repeat([]byte{1}, 64<<10)
	size := strconv.Itoa(len(data))
	c := manifest.Chunk{SHA256: manifest.Sum(data), Size: int64(len(data))}
	stall := func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Length", size)
		w.Write(data[:10])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}
	chunked := func(body []byte) func(w http.ResponseWriter, r *http.Request, n int) {
		return func(w http.ResponseWriter, r *http.Request, n int) {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush() // no Content-Length
			w.Write(body)
		}
	}
	declared := func(length int, body []byte) func(w http.ResponseWriter, r *http.Request, n int) {
		return func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Content-Length", strconv.Itoa(length))
			w.Write(body)
		}
	}
	quick := fetchPolicy{timeout: 5 * time.Second}
	tests := []struct {
		name    string
		policy  fetchPolicy
		handler func(w http.ResponseWriter, r *http.Request, n int)
		want    string
		not     string // must not appear
	}{
		{"too slow", fetchPolicy{timeout: time.Minute, minRate: 1 << 20, window: 100 * time.Millisecond}, stall,
			"response slower than min_throughput: 10 bytes in the last 100ms", ""},
		{"stalled", fetchPolicy{timeout: 200 * time.Millisecond}, stall,
			"no complete response within request_timeout 200ms", ""},
		{"endless body, no length declared", quick, chunked(append(bytes.Clone(data), "more"...)),
			"response too long: more than the 65536 bytes asked for, no Content-Length", "declared"},
		{"short body, no length declared", quick, chunked(data[:100]),
			"response cut short: 100 of the 65536 bytes asked for", "declared"},
		{"Content-Length past the chunk", quick, declared(len(data)+1, append(bytes.Clone(data), 'x')),
			"response too long: Content-Length 65537, want the 65536 bytes asked for", ""},
		{"Content-Length short of the chunk", quick, declared(len(data)-1, data[:len(data)-1]),
			"response cut short: Content-Length 65535, want the 65536 bytes asked for", "too long"},
		{"wrong Content-Range", fetchPolicy{timeout: 5 * time.Second, retries: 1}, func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 1 { // break off after 10 bytes: the retry asks for the rest
				w.Header().Set("Content-Length", size)
				w.Write(data[:10])
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler)
			}
			w.Header().Set("Content-Range", "bytes 0-65535/65536")
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data)
		}, `response of another range than asked for: Content-Range "bytes 0-65535/65536", want "bytes 10-65535/65536"`, "shorter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			o := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tt.handler(w, r, int(n.Add(1)))
			}), tt.policy)
			_, err := o.fetchChunk(context.Background(), c, make([]byte, c.Size))
			if err == nil {
				t.Fatal("fetch succeeded")
			}
			msg := err.Error()
			if strings.Count(msg, tt.want) != 1 {
				t.Errorf("error %q: want %q in it once", msg, tt.want)
			}
			if tt.not != "" && strings.Contains(msg, tt.not) {
				t.Errorf("error %q: want no %q in it", msg, tt.not)
			}
		})
	}
}

// TestFetchFileMessages: a file past its limit, with no length declared.
func TestFetchFileMessages(t *testing.T) {
	o := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		w.Write(make([]byte, 100))
	}), fetchPolicy{timeout: 5 * time.Second})
	_, err := o.fetchFile(context.Background(), "f", 16)
	const want = "response too long: more than the limit of 16 bytes, no Content-Length"
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "declared") {
		t.Errorf("error %v, want %q", err, want)
	}
}

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
	cfg := DefaultConfig()
	cfg.PeerTimeout, cfg.RequestTimeout, cfg.MinThroughput = 200*time.Millisecond, time.Hour, 0
	a := &Agent{cfg: &cfg, fleet: fleettls.Open(), log: slog.New(slog.DiscardHandler)}
	o := newPeerManager(a, nil).fetcher(strings.TrimPrefix(peer.URL, "http://"))
	_, err := o.fetchChunk(context.Background(), c, make([]byte, c.Size))
	const want = "no complete response within peer_timeout 200ms"
	if err == nil || strings.Count(err.Error(), want) != 1 || strings.Contains(err.Error(), "request_timeout") {
		t.Errorf("error %v, want %q once and no request_timeout", err, want)
	}
}

// TestConfigNameMessage: a subscription's bad name is refused with the same
// rule `fleetcast publish` gives (manifest.NameRule).
func TestConfigNameMessage(t *testing.T) {
	const base = "origin = \"https://example.com/\"\nroot = \"/etc/root.json\"\n[[subscription]]\n"
	_, err := ParseConfig([]byte(base + "product = \"roots\"\nchannel = \".x\"\n"))
	for _, want := range []string{`product "roots": want ` + manifest.NameRule, `channel ".x": want ` + manifest.NameRule} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
}
