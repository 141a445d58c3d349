// Package origintest is the fake origin of the agent's and the CLI's
// tests: an httptest server over an origin directory (docs/SPEC.md,
// "Origin layout") that answers as a plain web server does (Range
// requests, Last-Modified), with an ETag of its content on every channel
// manifest (Last-Modified alone has one-second resolution, too coarse for
// publishes milliseconds apart), and counts what it served. On request it
// misbehaves: it holds chunk responses at a gate or delays them, breaks
// their bodies (Fault), answers 304 Not Modified to every manifest request
// or to none, serves other bytes at a path, and goes down. Test code only.
//
// Only chunk responses are held, delayed and broken; manifests, roots and
// history files are always served at once.
package origintest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/manifest"
)

// Origin serves an origin directory over HTTP, on loopback unless told
// otherwise, until the test ends or Close. Its methods are safe for concurrent use, also while
// requests are served.
type Origin struct {
	dir string
	srv *httptest.Server

	mu       sync.Mutex
	served   Served
	replaced map[string][]byte // URL path → body served instead of the file
	etag     string            // "" = the SHA-256 of the manifest's body
	answer   Revalidation
	gate     *Gate
	delay    time.Duration
	faults   []fault
}

// Served is what the origin served, since it started or since the last
// Take.
type Served struct {
	Bytes           int64                   // body bytes of every response
	Chunks          map[manifest.Digest]int // requests for each chunk
	ChunkBytes      int64                   // body bytes of chunk responses
	Manifests       int                     // requests for a channel's manifest.json
	NotModified     int                     // of those, answered 304 Not Modified
	LastIfNoneMatch string                  // the If-None-Match of the last manifest request
}

// ChunkRequests is the number of chunk requests.
func (s Served) ChunkRequests() int {
	n := 0
	for _, v := range s.Chunks {
		n += v
	}
	return n
}

// Revalidation is how the origin answers a conditional GET of a manifest.
type Revalidation int

const (
	// Honest answers 304 Not Modified when If-None-Match is the ETag.
	Honest Revalidation = iota
	// Always304 answers 304 to every manifest request, with validators
	// or without: a broken origin or cache.
	Always304
	// Never304 sends the whole manifest every time, with its ETag: an
	// origin that ignores validators.
	Never304
)

// Option changes how New serves.
type Option func(*options)

type options struct {
	ln net.Listener // nil: a loopback port of its own
}

// Listener makes the origin serve on ln (a socket in a network
// namespace, say) instead of a loopback port of its own.
func Listener(ln net.Listener) Option {
	return func(o *options) { o.ln = ln }
}

// New serves the origin directory dir, which need not exist yet, until the
// test ends.
func New(t testing.TB, dir string, opts ...Option) *Origin {
	t.Helper()
	o := &Origin{dir: dir, replaced: make(map[string][]byte)}
	o.served.Chunks = make(map[manifest.Digest]int)
	var opt options
	for _, f := range opts {
		f(&opt)
	}
	o.srv = httptest.NewUnstartedServer(http.HandlerFunc(o.serve))
	if opt.ln != nil {
		o.srv.Listener.Close()
		o.srv.Listener = opt.ln
	}
	o.srv.Start()
	t.Cleanup(o.Close)
	return o
}

// URL is the origin's base URL, ending in a slash, as the agent's origin
// setting takes it.
func (o *Origin) URL() string { return o.srv.URL + "/" }

// Dir is the origin directory served.
func (o *Origin) Dir() string { return o.dir }

// Close takes the origin down: it lets every held response go, drops
// every connection and stops listening. Later calls do nothing.
func (o *Origin) Close() {
	o.mu.Lock()
	if o.gate != nil {
		o.gate.Open()
	}
	o.mu.Unlock()
	o.srv.CloseClientConnections()
	o.srv.Close()
}

// Served returns what the origin served so far.
func (o *Origin) Served() Served {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.served
	s.Chunks = maps.Clone(s.Chunks)
	return s
}

// Take returns what the origin served so far and starts counting again.
func (o *Origin) Take() Served {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.served
	o.served = Served{Chunks: make(map[manifest.Digest]int)}
	return s
}

// Replace serves body at the slash-separated path rel (a
// manifest.LatestPath, say) instead of the file there; a nil body serves
// the file again.
func (o *Origin) Replace(rel string, body []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if body == nil {
		delete(o.replaced, "/"+rel)
		return
	}
	o.replaced["/"+rel] = bytes.Clone(body)
}

// SetETag makes etag the ETag of every manifest; "" makes it the SHA-256
// of the manifest's body again.
func (o *Origin) SetETag(etag string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.etag = etag
}

// Revalidate sets how conditional GETs of manifests are answered.
func (o *Origin) Revalidate(r Revalidation) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.answer = r
}

// Delay makes every chunk response wait d before it starts.
func (o *Origin) Delay(d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.delay = d
}

func (o *Origin) serve(w http.ResponseWriter, r *http.Request) {
	d, isChunk := chunkOf(r.URL.Path)
	cw := &countingWriter{ResponseWriter: w, o: o, chunk: isChunk}
	switch {
	case isChunk:
		o.serveChunk(cw, r, d)
	case path.Base(r.URL.Path) == "manifest.json":
		o.serveManifest(cw, r)
	default:
		body, mod, err := o.read(r.URL.Path)
		if err != nil {
			http.NotFound(cw, r)
			return
		}
		http.ServeContent(cw, r, r.URL.Path, mod, bytes.NewReader(body))
	}
}

// chunkOf is the chunk whose URL path p is, if it is one.
func chunkOf(p string) (manifest.Digest, bool) {
	if !strings.HasPrefix(p, "/"+manifest.ChunksDir+"/") {
		return manifest.Digest{}, false
	}
	d, err := manifest.ParseDigest(path.Base(p))
	return d, err == nil && p == "/"+manifest.ChunkPath(d)
}

// serveManifest answers with the manifest and an ETag, or 304 as the
// origin's Revalidation says.
func (o *Origin) serveManifest(w http.ResponseWriter, r *http.Request) {
	body, _, err := o.read(r.URL.Path)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	inm := r.Header.Get("If-None-Match")
	o.mu.Lock()
	etag := o.etag
	if etag == "" {
		sum := sha256.Sum256(body)
		etag = `"` + hex.EncodeToString(sum[:]) + `"`
	}
	notModified := o.answer == Always304 || o.answer == Honest && inm == etag
	o.served.Manifests++
	o.served.LastIfNoneMatch = inm
	if notModified {
		o.served.NotModified++
	}
	o.mu.Unlock()
	w.Header().Set("ETag", etag)
	if notModified {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

// serveChunk counts the request, waits at the gate and for the delay,
// then sends chunk d, broken if a fault says so.
func (o *Origin) serveChunk(w http.ResponseWriter, r *http.Request, d manifest.Digest) {
	o.mu.Lock()
	o.served.Chunks[d]++
	gate := o.gate.admit()
	f := o.fault(d)
	delay := o.delay
	o.mu.Unlock()
	if !gate.wait(r.Context()) || !sleep(r.Context(), delay) {
		return
	}
	body, mod, err := o.read(r.URL.Path)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if f == 0 {
		http.ServeContent(w, r, "", mod, bytes.NewReader(body))
		return
	}
	f.write(w, body)
}

// sleep waits d, or less when ctx ends first; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// read returns the body served at URL path p: what Replace put there, or
// the regular file under the origin directory, with its time of change.
func (o *Origin) read(p string) ([]byte, time.Time, error) {
	o.mu.Lock()
	body, ok := o.replaced[p]
	o.mu.Unlock()
	if ok {
		return body, time.Time{}, nil
	}
	f, err := http.Dir(o.dir).Open(p)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, err
	}
	if !fi.Mode().IsRegular() {
		return nil, time.Time{}, http.ErrMissingFile
	}
	body, err = io.ReadAll(f)
	return body, fi.ModTime(), err
}

// countingWriter adds the body bytes written to the origin's counts.
type countingWriter struct {
	http.ResponseWriter
	o     *Origin
	chunk bool
}

// Write counts p before it writes it, so that a client never holds bytes
// not counted yet, and takes back what it could not write.
func (w *countingWriter) Write(p []byte) (int, error) {
	w.add(len(p))
	n, err := w.ResponseWriter.Write(p)
	w.add(n - len(p))
	return n, err
}

func (w *countingWriter) add(n int) {
	w.o.mu.Lock()
	defer w.o.mu.Unlock()
	w.o.served.Bytes += int64(n)
	if w.chunk {
		w.o.served.ChunkBytes += int64(n)
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
