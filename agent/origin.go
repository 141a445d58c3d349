package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/fleetcast/fleetcast/internal/clip"
	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/signing"
)

// Errors of a fetch. Each is wrapped with the URL and what was expected.
var (
	// errTooSlow: a response body fell below the configured minimum throughput.
	errTooSlow = errors.New("response slower than min_throughput")
	// errTooLong: a response body, or its Content-Length, went past the
	// chunk's size or the limit on the file.
	errTooLong = errors.New("response too long")
	// errTruncated: a response body ended before its Content-Length, or
	// declared or carried less than the chunk's size.
	errTruncated = errors.New("response cut short")
	// errBadRange: a partial response (206) is not of the range asked for.
	errBadRange = errors.New("response of another range than asked for")
	// errNotModified: a conditional GET found the manifest unchanged.
	errNotModified = errors.New("not modified")
)

// fetchPolicy bounds every request to the origin (or, later, a peer).
type fetchPolicy struct {
	timeout    time.Duration // whole request
	timeoutKey string        // the configuration key that set timeout; "" is request_timeout
	minRate    int64         // bytes/s over window; 0 disables
	window     time.Duration
	retries    int
	backoff    time.Duration
	backoffMax time.Duration
}

// originClient fetches manifests, roots and chunks from the origin mirror
// over HTTP(S). It is safe for concurrent use.
type originClient struct {
	base   *url.URL
	http   *http.Client
	policy fetchPolicy
	log    *slog.Logger
	bytes  atomic.Int64 // body bytes received, all requests

	// For a peer (peerManager.fetcher): where chunks are, a rate limit on
	// the bytes received, and what the logs call it.
	chunkPath func(manifest.Digest) string
	limit     *rate.Limiter
	what      string
	rejected  func() // called for each chunk body that fails its hash check; may be nil
}

func newOriginClient(base *url.URL, p fetchPolicy, conns int, log *slog.Logger) *originClient {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conns + 2
	tr.ResponseHeaderTimeout = p.timeout
	return &originClient{base: base, http: &http.Client{Transport: tr}, policy: p, log: log, chunkPath: manifest.ChunkPath, what: "origin"}
}

// manifestResponse is a fetched manifest envelope and its validators.
type manifestResponse struct {
	body         []byte
	etag         string
	lastModified string
}

// fetchManifest GETs the channel's latest manifest, conditionally on the
// validators of the last one seen; errNotModified when unchanged.
func (o *originClient) fetchManifest(ctx context.Context, product, channel, etag, lastModified string) (*manifestResponse, error) {
	rel := manifest.LatestPath(product, channel)
	var out *manifestResponse
	err := o.retry(ctx, rel, func(a *attempt) error {
		req, err := o.request(a.ctx, rel)
		if err != nil {
			return err
		}
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		} else if lastModified != "" {
			req.Header.Set("If-Modified-Since", lastModified)
		}
		return o.do(req, func(resp *http.Response) error {
			if resp.StatusCode == http.StatusNotModified {
				return errNotModified
			}
			body, err := readBody(a, resp, signing.MaxEnvelopeSize)
			if err != nil {
				return err
			}
			out = &manifestResponse{body: body, etag: resp.Header.Get("ETag"), lastModified: strongLastModified(resp.Header)}
			return nil
		})
	})
	return out, err
}

// strongLastModified returns the response's Last-Modified when it may be used
// as a validator, else "". Last-Modified has one-second resolution: a
// manifest replaced within the second it was served in keeps the same value,
// and an If-Modified-Since built from it would be answered 304 forever after.
// As RFC 9110 §8.8.2.2 says, the value is only trusted when it is at least
// one second older than the response's Date.
func strongLastModified(h http.Header) string {
	lm := h.Get("Last-Modified")
	if lm == "" {
		return ""
	}
	mod, err := http.ParseTime(lm)
	if err != nil {
		return ""
	}
	date, err := http.ParseTime(h.Get("Date"))
	if err != nil || date.Sub(mod) < time.Second {
		return ""
	}
	return lm
}

// fetchRoot GETs root version v; an error matching fs.ErrNotExist when the
// origin has none, as signing.FollowChain expects.
func (o *originClient) fetchRoot(ctx context.Context, version uint64) ([]byte, error) {
	return o.fetchFile(ctx, manifest.RootPath(version), signing.MaxRootSize)
}

// fetchFile GETs a whole file of at most limit bytes.
func (o *originClient) fetchFile(ctx context.Context, rel string, limit int64) ([]byte, error) {
	var out []byte
	err := o.retry(ctx, rel, func(a *attempt) error {
		req, err := o.request(a.ctx, rel)
		if err != nil {
			return err
		}
		return o.do(req, func(resp *http.Response) error {
			out, err = readBody(a, resp, limit)
			return err
		})
	})
	return out, err
}

// fetchChunk GETs chunk c into buf (which must hold c.Size bytes) and
// verifies its SHA-256 before returning it. A response whose declared or
// actual length differs from the chunk's size is refused. A retry after a
// body that broke off (too slow, reset) asks only for the bytes still
// missing, with a Range request: on an origin link shared by a fleet, a
// fetch that starts over wastes what the link already carried. A server
// that answers a Range request with the whole chunk (200) is read from the
// start; a chunk that fails its hash is fetched again in full.
func (o *originClient) fetchChunk(ctx context.Context, c manifest.Chunk, buf []byte) ([]byte, error) {
	rel := o.chunkPath(c.SHA256)
	buf = buf[:c.Size]
	var have int64 // buf[:have] arrived in earlier attempts
	var out []byte
	err := o.retry(ctx, rel, func(a *attempt) error {
		req, err := o.request(a.ctx, rel)
		if err != nil {
			return err
		}
		if have > 0 {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", have, c.Size-1))
		}
		return o.do(req, func(resp *http.Response) error {
			from, err := rangeStart(resp, have, c.Size)
			if err != nil {
				have = 0
				return err
			}
			n, err := readRest(a, resp, buf[from:])
			have = from + n
			if err != nil {
				return err
			}
			have = 0
			if got := manifest.Sum(buf); got != c.SHA256 {
				if o.rejected != nil {
					o.rejected()
				}
				return fmt.Errorf("chunk has SHA-256 %s: %w", got, manifest.ErrMismatch)
			}
			out = buf
			return nil
		})
	})
	return out, err
}

// rangeStart is the offset in the chunk where resp's body starts: 0 for a
// whole chunk (200), have for a 206 whose Content-Range is exactly the rest
// of the chunk.
func rangeStart(resp *http.Response, have, size int64) (int64, error) {
	if resp.StatusCode == http.StatusOK {
		return 0, nil
	}
	want := fmt.Sprintf("bytes %d-%d/%d", have, size-1, size)
	if cr := resp.Header.Get("Content-Range"); cr != want {
		return 0, fmt.Errorf("%w: Content-Range %q, want %q", errBadRange, clip.String(cr, 64), want)
	}
	return have, nil
}

func (o *originClient) request(ctx context.Context, rel string) (*http.Request, error) {
	u := o.base.JoinPath(rel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "fleetcast-agent")
	return req, nil
}

// statusError is an HTTP status other than 200 (and 304 where asked for).
type statusError struct {
	code int
}

func (e *statusError) Error() string {
	return "HTTP " + strconv.Itoa(e.code) + " " + http.StatusText(e.code)
}

// Is makes a 404 or 410 match fs.ErrNotExist.
func (e *statusError) Is(target error) bool {
	return target == fs.ErrNotExist && (e.code == http.StatusNotFound || e.code == http.StatusGone)
}

func (o *originClient) do(req *http.Request, handle func(*http.Response) error) error {
	resp, err := o.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	partial := resp.StatusCode == http.StatusPartialContent && req.Header.Get("Range") != ""
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotModified && !partial {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return &statusError{resp.StatusCode}
	}
	return handle(resp)
}

// readBody reads a whole body of at most limit bytes.
func readBody(a *attempt, resp *http.Response, limit int64) ([]byte, error) {
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("%w: Content-Length %d, limit %d bytes", errTooLong, resp.ContentLength, limit)
	}
	r := a.watch(resp.Body)
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: more than the limit of %d bytes, no Content-Length", errTooLong, limit)
	}
	if resp.ContentLength >= 0 && int64(len(b)) != resp.ContentLength {
		return nil, fmt.Errorf("%w: %d of the %d bytes its Content-Length declared", errTruncated, len(b), resp.ContentLength)
	}
	return b, nil
}

// readRest reads a body that must be exactly len(buf) bytes into buf, and
// returns how many bytes arrived, also when it broke off.
func readRest(a *attempt, resp *http.Response, buf []byte) (int64, error) {
	want := int64(len(buf))
	switch {
	case resp.ContentLength > want:
		return 0, fmt.Errorf("%w: Content-Length %d, want the %d bytes asked for", errTooLong, resp.ContentLength, want)
	case resp.ContentLength >= 0 && resp.ContentLength < want:
		return 0, fmt.Errorf("%w: Content-Length %d, want the %d bytes asked for", errTruncated, resp.ContentLength, want)
	}
	r := a.watch(resp.Body)
	n, err := io.ReadFull(r, buf)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return int64(n), fmt.Errorf("%w: %d of the %d bytes asked for", errTruncated, n, want)
	}
	if err != nil {
		return int64(n), err
	}
	var one [1]byte
	if m, _ := r.Read(one[:]); m > 0 {
		return 0, fmt.Errorf("%w: more than the %d bytes asked for, no Content-Length", errTooLong, want)
	}
	return want, nil
}

// retry runs try until it succeeds, fails for good, or the retries are
// spent, sleeping with exponential backoff and full jitter in between. Each
// attempt gets the whole-request timeout and the throughput watchdog.
func (o *originClient) retry(ctx context.Context, rel string, try func(*attempt) error) error {
	p := o.policy
	var err error
	for i := 0; ; i++ {
		err = o.try(ctx, try)
		if err == nil || !retryable(err) || ctx.Err() != nil || i >= p.retries {
			break
		}
		wait := backoff(p.backoff, p.backoffMax, i)
		o.log.Warn(o.what+" fetch failed; retrying", slog.String("path", rel), slog.Int("attempt", i+1),
			slog.Duration("backoff", wait), slog.String("reason", err.Error()))
		select {
		case <-ctx.Done():
			return fmt.Errorf("fetch %s: %w", o.base.JoinPath(rel), context.Cause(ctx))
		case <-time.After(wait):
		}
	}
	if err != nil {
		return fmt.Errorf("fetch %s: %w", o.base.JoinPath(rel), err)
	}
	return nil
}

func (o *originClient) try(ctx context.Context, try func(*attempt) error) error {
	actx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	key := cmp.Or(o.policy.timeoutKey, "request_timeout")
	tctx, cancel := context.WithTimeoutCause(actx, o.policy.timeout,
		fmt.Errorf("no complete response within %s %s", key, o.policy.timeout))
	defer cancel()
	a := &attempt{ctx: tctx, abort: abort, o: o}
	err := try(a)
	a.stop()
	if err != nil && tctx.Err() != nil && ctx.Err() == nil {
		// The transport often returns the cause itself: say it once.
		if cause := context.Cause(tctx); !errors.Is(err, cause) {
			err = fmt.Errorf("%w (%w)", cause, err)
		}
	}
	return err
}

// retryable: everything but a not-modified, a missing file, and other 4xx
// answers is worth another attempt (network errors, 5xx, 429, timeouts,
// short, long, slow or corrupt bodies).
func retryable(err error) bool {
	var se *statusError
	switch {
	case errors.Is(err, errNotModified), errors.Is(err, context.Canceled):
		return false
	case errors.As(err, &se):
		return se.code >= 500 || se.code == http.StatusTooManyRequests || se.code == http.StatusRequestTimeout
	}
	return true
}

// backoff is full-jitter exponential backoff: uniform in [0, min(max, base*2^n)].
func backoff(base, maxWait time.Duration, n int) time.Duration {
	d := base << min(n, 30)
	if d <= 0 || d > maxWait {
		d = maxWait
	}
	if d <= 0 {
		return 0
	}
	return rand.N(d) + 1
}

// attempt is one try of a request: its context, and the watchdogs it started.
type attempt struct {
	ctx   context.Context
	abort context.CancelCauseFunc
	o     *originClient
	stops []func()
}

// watch wraps a response body so that it counts received bytes, and aborts
// the attempt when fewer than min_throughput*window bytes arrive in a
// throughput window, including a body that stops sending altogether.
func (a *attempt) watch(body io.Reader) io.Reader {
	r := &countingReader{r: body, o: a.o}
	p := a.o.policy
	if p.minRate <= 0 || p.window <= 0 {
		return r
	}
	minBytes := int64(float64(p.minRate) * p.window.Seconds())
	tick := time.NewTicker(p.window)
	quit := make(chan struct{})
	go func() {
		defer tick.Stop()
		var last int64
		for {
			select {
			case <-quit:
				return
			case <-a.ctx.Done():
				return
			case <-tick.C:
				n := r.n.Load()
				if n-last < minBytes {
					a.abort(fmt.Errorf("%w: %d bytes in the last %s", errTooSlow, n-last, p.window))
					return
				}
				last = n
			}
		}
	}()
	a.stops = append(a.stops, func() { close(quit) })
	return r
}

func (a *attempt) stop() {
	for _, s := range a.stops {
		s()
	}
}

// countingReader counts the body bytes it passes on, per request and for the
// client as a whole.
type countingReader struct {
	r io.Reader
	o *originClient
	n atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	if l := r.o.limit; l != nil && len(p) > l.Burst() {
		p = p[:l.Burst()]
	}
	n, err := r.r.Read(p)
	r.n.Add(int64(n))
	r.o.bytes.Add(int64(n))
	if l := r.o.limit; l != nil && n > 0 {
		if werr := l.WaitN(context.Background(), n); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}
