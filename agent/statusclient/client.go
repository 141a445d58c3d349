// Package statusclient reads the status API of fleetcast agents (GET
// /v1/status, docs/SPEC.md §8): of one agent, or of every agent a LAN fleet
// knows of at once, and sums a rollout up per product channel.
//
// A Client speaks TLS pinned to the fleet key when the fleet has a secret,
// plain HTTP when it has none, and, when all it knows is an address, tries
// TLS and falls back to plain HTTP when the agent answers in plain HTTP.
// Clients are safe for concurrent use.
package statusclient

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/fleetcast/fleetcast/agent/fleettls"
	"github.com/fleetcast/fleetcast/agent/peerproto"
)

const (
	// StatusPath is the agent's status endpoint.
	StatusPath = "/v1/status"
	// MaxStatusBytes bounds a status body. An agent's status grows with its
	// peers and subscriptions, a few hundred bytes each; 4 MiB is far above
	// any fleet the agent would follow.
	MaxStatusBytes = 4 << 20
	// maxErrorBody bounds what is read of a non-200 answer, to quote it.
	maxErrorBody = 512
	// DefaultTimeout bounds one status request, connection included.
	DefaultTimeout = 3 * time.Second
	// DefaultConcurrency bounds the status requests Gather has in flight.
	DefaultConcurrency = 16
)

// Errors of Fetch, to test with errors.Is.
var (
	// ErrUnreachable: nothing listens at the address (connection refused).
	ErrUnreachable = errors.New("no agent answers")
	// ErrTimeout: the agent did not answer within the Client's Timeout.
	ErrTimeout = errors.New("no answer")
	// ErrTooLarge: the body exceeds MaxStatusBytes.
	ErrTooLarge = errors.New("status body too large")
	// ErrPlainHTTP: the agent speaks plain HTTP, but the fleet has a secret.
	ErrPlainHTTP = errors.New("agent speaks plain HTTP")
)

// mode is how a Client reaches agents.
type mode int

const (
	modePinned mode = iota // closed fleet: TLS, the server must hold the fleet key
	modePlain              // open fleet: plain HTTP
	modeProbe              // fleet unknown: TLS unverified, else plain HTTP
)

// Client fetches agents' status. Set Timeout and Concurrency before first use.
type Client struct {
	Timeout     time.Duration // per request; DefaultTimeout when zero
	Concurrency int           // Gather's requests in flight; DefaultConcurrency when zero

	mode       mode
	tls, plain *http.Client
	plainAddrs sync.Map // addresses found speaking plain HTTP (modeProbe)
}

// New returns a Client for the agents of fleet: over TLS as a fleet member
// (fleettls' client configuration, which accepts only a server holding the
// fleet key) when the fleet is closed, over plain HTTP when it is open. A nil
// fleet means unknown: see NewProbing.
func New(fleet *fleettls.Fleet) *Client {
	switch {
	case fleet == nil:
		return NewProbing()
	case fleet.Closed():
		return newClient(modePinned, fleet.Transport(lanTransport()))
	}
	return newClient(modePlain, nil)
}

// NewProbing returns a Client for agents of an unknown fleet: it tries TLS
// and falls back to plain HTTP when the agent answers in plain HTTP.
func NewProbing() *Client {
	// InsecureSkipVerify: without the fleet secret there is no key to pin.
	// That is acceptable here only because /v1/status is public: agents
	// serve it to any client (curl -k), this client sends nothing secret,
	// and what it reads is shown, never trusted for a decision.
	t := lanTransport()
	t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
	return newClient(modeProbe, t)
}

// lanTransport is the base transport: agents are on the LAN, never behind
// the operator's HTTP proxy.
func lanTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	return t
}

// newClient returns a Client reaching agents over tlsTransport (nil for
// plain HTTP only).
func newClient(m mode, tlsTransport *http.Transport) *Client {
	c := &Client{mode: m, plain: &http.Client{Transport: lanTransport()}}
	if tlsTransport != nil {
		c.tls = &http.Client{Transport: tlsTransport}
	}
	return c
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// Fetch reads the status of the agent listening at addr (host:port).
// Errors name the address and wrap ErrUnreachable, ErrTimeout, ErrTooLarge
// or ErrPlainHTTP where they apply.
func Fetch(ctx context.Context, c *Client, addr string) (peerproto.Status, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return peerproto.Status{}, fmt.Errorf("agent address %q: want host:port", addr)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	st, err := c.fetch(ctx, addr)
	if err != nil {
		return peerproto.Status{}, c.describe(addr, err)
	}
	return st, nil
}

func (c *Client) fetch(ctx context.Context, addr string) (peerproto.Status, error) {
	if c.mode == modePlain {
		return get(ctx, c.plain, "http", addr)
	}
	if _, ok := c.plainAddrs.Load(addr); ok {
		st, err := get(ctx, c.plain, "http", addr)
		if err != nil {
			c.plainAddrs.Delete(addr) // probe again next time: it may have restarted with TLS
		}
		return st, err
	}
	st, err := get(ctx, c.tls, "https", addr)
	if err == nil || !errors.Is(err, http.ErrSchemeMismatch) {
		return st, err
	}
	if c.mode == modePinned {
		return st, fmt.Errorf("%w, but the configuration names a fleet secret: is the agent running with another configuration?", ErrPlainHTTP)
	}
	c.plainAddrs.Store(addr, true)
	return get(ctx, c.plain, "http", addr)
}

// get reads and decodes scheme://addr/v1/status.
func get(ctx context.Context, hc *http.Client, scheme, addr string) (peerproto.Status, error) {
	var st peerproto.Status
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+StatusPath, nil)
	if err != nil {
		return st, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return st, fmt.Errorf("%s answered HTTP %s: %q", StatusPath, resp.Status, msg)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxStatusBytes+1))
	if err != nil {
		return st, fmt.Errorf("read status: %w", err)
	}
	if len(body) > MaxStatusBytes {
		return st, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, MaxStatusBytes)
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("decode status: %w: is this a fleetcast agent?", err)
	}
	sanitize(&st)
	return st, nil
}

// describe turns a request error into one that says what happened at addr.
func (c *Client) describe(addr string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // drop `Get "https://...":`, the address says it
	}
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("agent at %s: %w within %s", addr, ErrTimeout, c.timeout())
	case errors.As(err, &oe) && oe.Op == "dial":
		return fmt.Errorf("%w at %s: %v", ErrUnreachable, addr, dialReason(oe))
	}
	return fmt.Errorf("agent at %s: %w", addr, err)
}

// dialReason is why a connection failed, without the "dial tcp" prefix:
// "connection refused", "no route to host", "lookup x: no such host".
func dialReason(oe *net.OpError) error {
	var se *os.SyscallError
	if errors.As(oe.Err, &se) {
		return se.Err
	}
	return oe.Err
}
