package origintest

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/manifest"
)

// setup makes an origin directory holding chunk c and a channel manifest.
func setup(t *testing.T) (dir string, c []byte, d manifest.Digest) {
	t.Helper()
	dir = t.TempDir()
	c = bytes.Repeat([]byte("0123456789"), 1000)
	d = manifest.Sum(c)
	write(t, dir, manifest.ChunkPath(d), c)
	write(t, dir, manifest.LatestPath("app", "stable"), []byte(`{"payload":"m1"}`))
	return dir, c, d
}

func write(t *testing.T, dir, rel string, b []byte) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// get GETs rel with the headers in h (name, value, ...) and returns the
// response with its body read.
func get(t *testing.T, o *Origin, rel string, h ...string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, o.URL()+rel, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(h); i += 2 {
		req.Header.Set(h[i], h[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestFilesAndRanges(t *testing.T) {
	dir, c, d := setup(t)
	write(t, dir, manifest.RootPath(1), []byte("root"))
	o := New(t, dir)
	resp, b, err := get(t, o, manifest.RootPath(1))
	if err != nil || resp.StatusCode != http.StatusOK || string(b) != "root" || resp.Header.Get("Last-Modified") == "" {
		t.Fatalf("root: %v, %v, %q; want 200 with Last-Modified", resp.Status, err, b)
	}
	if resp, _, _ := get(t, o, "roots"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a directory: %s; want 404", resp.Status)
	}
	write(t, filepath.Dir(dir), "outside", []byte("outside"))
	if resp, _, _ := get(t, o, "../outside"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a file outside the directory: %s; want 404", resp.Status)
	}
	resp, b, err = get(t, o, manifest.ChunkPath(d), "Range", "bytes=100-")
	if err != nil || resp.StatusCode != http.StatusPartialContent || !bytes.Equal(b, c[100:]) {
		t.Fatalf("ranged chunk: %v, %v, %d bytes; want 206 and the rest", resp.Status, err, len(b))
	}
	s := o.Served()
	if s.Chunks[d] != 1 || s.ChunkRequests() != 1 || s.ChunkBytes != int64(len(c)-100) || s.Bytes <= s.ChunkBytes {
		t.Errorf("served %+v; want one chunk request of %d bytes, and more bytes in all", s, len(c)-100)
	}
	if s := o.Take(); s.ChunkRequests() != 1 {
		t.Errorf("Take: %+v", s)
	}
	if s := o.Served(); s.ChunkRequests() != 0 || s.Bytes != 0 {
		t.Errorf("after Take: %+v; want nothing", s)
	}
}

func TestManifestRevalidation(t *testing.T) {
	dir, _, _ := setup(t)
	o := New(t, dir)
	latest := manifest.LatestPath("app", "stable")
	resp, b, _ := get(t, o, latest)
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != http.StatusOK || string(b) != `{"payload":"m1"}` || len(etag) != 66 {
		t.Fatalf("manifest: %s, %q, ETag %q; want 200 with the SHA-256 as ETag", resp.Status, b, etag)
	}
	for _, tc := range []struct {
		answer Revalidation
		inm    string
		want   int
	}{
		{Honest, etag, http.StatusNotModified},
		{Honest, `"other"`, http.StatusOK},
		{Always304, "", http.StatusNotModified},
		{Never304, etag, http.StatusOK},
	} {
		o.Revalidate(tc.answer)
		if resp, _, _ := get(t, o, latest, "If-None-Match", tc.inm); resp.StatusCode != tc.want {
			t.Errorf("Revalidation %d, If-None-Match %q: %s; want %d", tc.answer, tc.inm, resp.Status, tc.want)
		}
	}
	if s := o.Served(); s.Manifests != 5 || s.NotModified != 2 || s.LastIfNoneMatch != etag {
		t.Errorf("served %+v; want 5 manifest requests, 2 answered 304, the last with If-None-Match %s", s, etag)
	}

	o.Revalidate(Honest)
	o.SetETag(`"fixed"`)
	o.Replace(latest, []byte("m2"))
	if resp, b, _ := get(t, o, latest, "If-None-Match", etag); resp.StatusCode != http.StatusOK || string(b) != "m2" || resp.Header.Get("ETag") != `"fixed"` {
		t.Errorf("replaced, fixed ETag: %s, %q, %q", resp.Status, b, resp.Header.Get("ETag"))
	}
	o.Replace(latest, nil)
	if _, b, _ := get(t, o, latest); string(b) != `{"payload":"m1"}` {
		t.Errorf("after Replace nil: %q; want the file", b)
	}
}

func TestHold(t *testing.T) {
	dir, c, d := setup(t)
	o := New(t, dir)
	g := o.Hold(1)
	if _, b, err := get(t, o, manifest.ChunkPath(d)); err != nil || !bytes.Equal(b, c) {
		t.Fatalf("the free request: %v", err)
	}
	done := make(chan []byte, 2)
	for range 2 {
		go func() {
			_, b, _ := get(t, o, manifest.ChunkPath(d))
			done <- b
		}()
	}
	select {
	case <-g.Held():
	case <-time.After(10 * time.Second):
		t.Fatal("no request held within 10 s")
	}
	g.Pass()
	if b := <-done; !bytes.Equal(b, c) {
		t.Errorf("passed response: %d bytes", len(b))
	}
	select {
	case <-done:
		t.Fatal("two responses went for one Pass")
	case <-time.After(50 * time.Millisecond):
	}
	g.Open()
	if b := <-done; !bytes.Equal(b, c) {
		t.Errorf("opened response: %d bytes", len(b))
	}
	g.Pass() // returns: the gate is open
}

func TestDelay(t *testing.T) {
	dir, _, d := setup(t)
	o := New(t, dir)
	o.Delay(100 * time.Millisecond)
	start := time.Now()
	get(t, o, manifest.ChunkPath(d))
	if e := time.Since(start); e < 100*time.Millisecond {
		t.Errorf("chunk came after %v; want the delay of 100ms", e)
	}
}

func TestBreak(t *testing.T) {
	dir, c, d := setup(t)
	other := []byte("another chunk")
	write(t, dir, manifest.ChunkPath(manifest.Sum(other)), other)
	o := New(t, dir)
	o.Break(Corrupt, 1, d)
	for i, want := range []bool{true, false} {
		_, b, err := get(t, o, manifest.ChunkPath(d))
		if err != nil || len(b) != len(c) || bytes.Equal(b, c) != !want {
			t.Errorf("response %d: %v, %d bytes, corrupt %v; want corrupt %v", i, err, len(b), !bytes.Equal(b, c), want)
		}
	}
	for _, f := range []Fault{Truncate, LongDeclared, ShortDeclared, ChunkedExtra, ChunkedShort} {
		t.Run(f.String(), func(t *testing.T) {
			o.Mend()
			o.Break(f, Always)
			for range 2 {
				_, b, err := get(t, o, manifest.ChunkPath(d), "Range", "bytes=10-")
				if err == nil && bytes.Equal(b, c) || err == nil && bytes.Equal(b, c[10:]) {
					t.Errorf("got the chunk whole; want it broken")
				}
			}
			if _, b, err := get(t, o, manifest.ChunkPath(manifest.Sum(other))); err == nil && bytes.Equal(b, other) {
				t.Errorf("another chunk unbroken; want every chunk broken")
			}
		})
	}
	o.Mend()
	if _, b, err := get(t, o, manifest.ChunkPath(d)); err != nil || !bytes.Equal(b, c) {
		t.Errorf("after Mend: %v, %d bytes; want the chunk", err, len(b))
	}
}

func TestCloseAndListener(t *testing.T) {
	dir, _, d := setup(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := New(t, dir, Listener(ln))
	if !strings.Contains(o.URL(), ln.Addr().String()) {
		t.Fatalf("URL %s; want the listener's address %s", o.URL(), ln.Addr())
	}
	g := o.Hold(0)
	held := make(chan struct{})
	go func() {
		get(t, o, manifest.ChunkPath(d))
		close(held)
	}()
	<-g.Held()
	o.Close() // returns once the held request is over
	<-held
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, o.URL(), nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("after Close: %s; want no answer", resp.Status)
	}
	o.Close()
}
