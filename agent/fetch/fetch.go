// Package fetch is the agent's one HTTP client: bounded, retried with
// jittered backoff, watched for a minimum throughput, counting what it
// receives. The origin mirror and each peer are instances of Client with
// their own policy (docs/SPEC.md §7 and §8).
package fetch

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
	// ErrTooSlow: a response body fell below the configured minimum throughput.
	ErrTooSlow = errors.New("response slower than min_throughput")
	// ErrTooLong: a response body, or its Content-Length, went past the
	// chunk's size or the limit on the file.
	ErrTooLong = errors.New("response too long")
	// ErrTruncated: a response body ended before its Content-Length, or
	// declared or carried less than the chunk's size.
	ErrTruncated = errors.New("response cut short")
	// ErrBadRange: a partial response (206) is not of the range asked for.
	ErrBadRange = errors.New("response of another range than asked for")
	// ErrNotModified: a conditional GET found the manifest unchanged.
	ErrNotModified = errors.New("not modified")
)

// Policy bounds every request of a Client.
type Policy struct {
	Timeout    time.Duration // whole request
	TimeoutKey string        // the configuration key that set Timeout, for messages; "" is request_timeout
	MinRate    int64         // bytes/s over Window; 0 disables
	Window     time.Duration
	Retries    int // attempts after the first
	Backoff    time.Duration
	BackoffMax time.Duration
}

// Client fetches manifests, roots, files and chunks from one HTTP(S) base:
// the origin mirror, or one peer. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	http     *http.Client
	policy   Policy
	log      *slog.Logger
	bytes    atomic.Int64 // body bytes received, all requests
	what     string
	chunk    func(manifest.Digest) string
	limit    *rate.Limiter
	rejected func()
}

// Options are what sets a Client apart beyond its policy.
type Options struct {
	// HTTP is the client to use; nil makes one for the origin with Conns
	// connections kept (NewHTTP).
	HTTP  *http.Client
	Conns int
	// What names the other end in logs: "origin" (the default) or "peer".
	What string
	// ChunkPath is where a chunk is below the base; nil is the origin's
	// layout (manifest.ChunkPath).
	ChunkPath func(manifest.Digest) string
	// Limit, if set, bounds the rate of the bytes received.
	Limit *rate.Limiter
	// Rejected, if set, is called for each chunk body that fails its hash.
	Rejected func()
}

// New returns a client of base with policy p.
func New(base *url.URL, p Policy, opts Options, log *slog.Logger) *Client {
	c := &Client{base: base, http: opts.HTTP, policy: p, log: log, what: cmp.Or(opts.What, "origin"),
		chunk: opts.ChunkPath, limit: opts.Limit, rejected: opts.Rejected}
	if c.http == nil {
		c.http = NewHTTP(opts.Conns, p.Timeout)
	}
	if c.chunk == nil {
		c.chunk = manifest.ChunkPath
	}
	return c
}

// NewHTTP is an HTTP client for one host that keeps conns connections and
// waits at most headerTimeout for a response's headers.
func NewHTTP(conns int, headerTimeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conns + 2
	tr.ResponseHeaderTimeout = headerTimeout
	return &http.Client{Transport: tr}
}

// Bytes is how many body bytes the client received, all requests.
func (o *Client) Bytes() int64 { return o.bytes.Load() }

// Host is the host (and port) the client fetches from.
func (o *Client) Host() string { return o.base.Host }

// ManifestResponse is a fetched manifest envelope and its validators.
type ManifestResponse struct {
	Body         []byte
	ETag         string
	LastModified string
}

// Manifest GETs the channel's latest manifest, conditionally on the
// validators of the last one seen; ErrNotModified when unchanged.
func (o *Client) Manifest(ctx context.Context, ch manifest.ChannelID, etag, lastModified string) (*ManifestResponse, error) {
	rel := manifest.LatestPath(ch.Product, ch.Channel)
	var out *ManifestResponse
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
				return ErrNotModified
			}
			body, err := readBody(a.watch(resp.Body), resp, signing.MaxEnvelopeSize)
			if err != nil {
				return err
			}
			out = &ManifestResponse{Body: body, ETag: resp.Header.Get("ETag"), LastModified: strongLastModified(resp.Header)}
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

// Root GETs root version v; an error matching fs.ErrNotExist when the
// origin has none, as signing.FollowChain expects.
func (o *Client) Root(ctx context.Context, version uint64) ([]byte, error) {
	return o.File(ctx, manifest.RootPath(version), signing.MaxRootSize)
}

// File GETs a whole file of at most limit bytes.
func (o *Client) File(ctx context.Context, rel string, limit int64) ([]byte, error) {
	var out []byte
	err := o.retry(ctx, rel, func(a *attempt) error {
		req, err := o.request(a.ctx, rel)
		if err != nil {
			return err
		}
		return o.do(req, func(resp *http.Response) error {
			out, err = readBody(a.watch(resp.Body), resp, limit)
			return err
		})
	})
	return out, err
}

// Chunk GETs chunk c into buf (which must hold c.Size bytes) and
// verifies its SHA-256 before returning it. A response whose declared or
// actual length differs from the chunk's size is refused. A retry after a
// body that broke off (too slow, reset) asks only for the bytes still
// missing, with a Range request: on an origin link shared by a fleet, a
// fetch that starts over wastes what the link already carried. A server
// that answers a Range request with the whole chunk (200) is read from the
// start; a chunk that fails its hash is fetched again in full.
func (o *Client) Chunk(ctx context.Context, c manifest.Chunk, buf []byte) ([]byte, error) {
	rel := o.chunk(c.SHA256)
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
		return 0, fmt.Errorf("%w: Content-Range %q, want %q", ErrBadRange, clip.String(cr, 64), want)
	}
	return have, nil
}

func (o *Client) request(ctx context.Context, rel string) (*http.Request, error) {
	u := o.base.JoinPath(rel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "fleetcast-agent")
	return req, nil
}

// StatusError is an HTTP status other than 200 (and 304 where asked for).
type StatusError struct {
	Code int
}

func (e *StatusError) Error() string {
	return "HTTP " + strconv.Itoa(e.Code) + " " + http.StatusText(e.Code)
}

// Is makes a 404 or 410 match fs.ErrNotExist.
func (e *StatusError) Is(target error) bool {
	return target == fs.ErrNotExist && (e.Code == http.StatusNotFound || e.Code == http.StatusGone)
}

func (o *Client) do(req *http.Request, handle func(*http.Response) error) error {
	resp, err := o.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	partial := resp.StatusCode == http.StatusPartialContent && req.Header.Get("Range") != ""
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotModified && !partial {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return &StatusError{Code: resp.StatusCode}
	}
	return handle(resp)
}

// ReadBody reads resp's whole body, of at most limit bytes and exactly its
// Content-Length if it declared one: for requests made without a Client
// (a peer's state long-poll).
func ReadBody(resp *http.Response, limit int64) ([]byte, error) {
	return readBody(resp.Body, resp, limit)
}

// readBody reads a whole body of at most limit bytes from r, resp's body
// as the attempt watches it.
func readBody(r io.Reader, resp *http.Response, limit int64) ([]byte, error) {
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("%w: Content-Length %d, limit %d bytes", ErrTooLong, resp.ContentLength, limit)
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: more than the limit of %d bytes, no Content-Length", ErrTooLong, limit)
	}
	if resp.ContentLength >= 0 && int64(len(b)) != resp.ContentLength {
		return nil, fmt.Errorf("%w: %d of the %d bytes its Content-Length declared", ErrTruncated, len(b), resp.ContentLength)
	}
	return b, nil
}

// readRest reads a body that must be exactly len(buf) bytes into buf, and
// returns how many bytes arrived, also when it broke off.
func readRest(a *attempt, resp *http.Response, buf []byte) (int64, error) {
	want := int64(len(buf))
	switch {
	case resp.ContentLength > want:
		return 0, fmt.Errorf("%w: Content-Length %d, want the %d bytes asked for", ErrTooLong, resp.ContentLength, want)
	case resp.ContentLength >= 0 && resp.ContentLength < want:
		return 0, fmt.Errorf("%w: Content-Length %d, want the %d bytes asked for", ErrTruncated, resp.ContentLength, want)
	}
	r := a.watch(resp.Body)
	n, err := io.ReadFull(r, buf)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return int64(n), fmt.Errorf("%w: %d of the %d bytes asked for", ErrTruncated, n, want)
	}
	if err != nil {
		return int64(n), err
	}
	var one [1]byte
	if m, _ := r.Read(one[:]); m > 0 {
		return 0, fmt.Errorf("%w: more than the %d bytes asked for, no Content-Length", ErrTooLong, want)
	}
	return want, nil
}

// retry runs try until it succeeds, fails for good, or the retries are
// spent, sleeping with exponential backoff and full jitter in between. Each
// attempt gets the whole-request timeout and the throughput watchdog.
func (o *Client) retry(ctx context.Context, rel string, try func(*attempt) error) error {
	p := o.policy
	var err error
	for i := 0; ; i++ {
		err = o.try(ctx, try)
		if err == nil || !retryable(err) || ctx.Err() != nil || i >= p.Retries {
			break
		}
		wait := Backoff(p.Backoff, p.BackoffMax, i)
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

func (o *Client) try(ctx context.Context, try func(*attempt) error) error {
	actx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	key := cmp.Or(o.policy.TimeoutKey, "request_timeout")
	tctx, cancel := context.WithTimeoutCause(actx, o.policy.Timeout,
		fmt.Errorf("no complete response within %s %s", key, o.policy.Timeout))
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
	var se *StatusError
	switch {
	case errors.Is(err, ErrNotModified), errors.Is(err, context.Canceled):
		return false
	case errors.As(err, &se):
		return se.Code >= 500 || se.Code == http.StatusTooManyRequests || se.Code == http.StatusRequestTimeout
	}
	return true
}

// Backoff is full-jitter exponential backoff: uniform in [0, min(max, base*2^n)].
func Backoff(base, maxWait time.Duration, n int) time.Duration {
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
	o     *Client
	stops []func()
}

// watch wraps a response body so that it counts received bytes, and aborts
// the attempt when fewer than min_throughput*window bytes arrive in a
// throughput window, including a body that stops sending altogether.
func (a *attempt) watch(body io.Reader) io.Reader {
	r := &countingReader{r: body, o: a.o}
	p := a.o.policy
	if p.MinRate <= 0 || p.Window <= 0 {
		return r
	}
	minBytes := int64(float64(p.MinRate) * p.Window.Seconds())
	tick := time.NewTicker(p.Window)
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
					a.abort(fmt.Errorf("%w: %d bytes in the last %s", ErrTooSlow, n-last, p.Window))
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
	o *Client
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

// Limiter bounds a byte stream to r bytes a second, in bursts of 64 KiB or
// a tenth of a second's worth, whichever is larger: download_rate and
// upload_rate.
func Limiter(r int64) *rate.Limiter { return rate.NewLimiter(rate.Limit(r), int(max(64<<10, r/10))) }
