package fetch

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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
	quick := Policy{Timeout: 5 * time.Second}
	tests := []struct {
		name    string
		policy  Policy
		handler func(w http.ResponseWriter, r *http.Request, n int)
		want    string
		not     string // must not appear
	}{
		{"too slow", Policy{Timeout: time.Minute, MinRate: 1 << 20, Window: 100 * time.Millisecond}, stall,
			"response slower than min_throughput: 10 bytes in the last 100ms", ""},
		{"stalled", Policy{Timeout: 200 * time.Millisecond}, stall,
			"no complete response within request_timeout 200ms", ""},
		{"endless body, no length declared", quick, chunked(append(bytes.Clone(data), "more"...)),
			"response too long: more than the 65536 bytes asked for, no Content-Length", "declared"},
		{"short body, no length declared", quick, chunked(data[:100]),
			"response cut short: 100 of the 65536 bytes asked for", "declared"},
		{"Content-Length past the chunk", quick, declared(len(data)+1, append(bytes.Clone(data), 'x')),
			"response too long: Content-Length 65537, want the 65536 bytes asked for", ""},
		{"Content-Length short of the chunk", quick, declared(len(data)-1, data[:len(data)-1]),
			"response cut short: Content-Length 65535, want the 65536 bytes asked for", "too long"},
		{"wrong Content-Range", Policy{Timeout: 5 * time.Second, Retries: 1}, func(w http.ResponseWriter, r *http.Request, n int) {
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
			_, err := o.Chunk(context.Background(), c, make([]byte, c.Size))
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
	}), Policy{Timeout: 5 * time.Second})
	_, err := o.File(context.Background(), "f", 16)
	const want = "response too long: more than the limit of 16 bytes, no Content-Length"
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "declared") {
		t.Errorf("error %v, want %q", err, want)
	}
}
