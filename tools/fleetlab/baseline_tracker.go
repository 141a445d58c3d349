//go:build linux

package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fleetcast/fleetcast/internal/netlab"
)

// trackerClient asks the lab's tracker, from inside the origin host, about
// the run's torrent.
type trackerClient struct {
	tr     *http.Transport
	client *http.Client
	base   string // http://ORIGIN:PORT
	hash   [20]byte
	seeder string // ORIGIN:btListenPort, the seeder's compact peer entry
}

func newTrackerClient(origin *netlab.Host, hash [20]byte) *trackerClient {
	tr := &http.Transport{DialContext: origin.DialContext, DisableKeepAlives: true}
	ip := net.ParseIP(origin.IP()).To4()
	port, _ := strconv.Atoi(btListenPort)
	return &trackerClient{tr: tr, client: &http.Client{Transport: tr, Timeout: 2 * time.Second},
		base: "http://" + origin.IP() + ":" + trackerPort, hash: hash,
		seeder: string(ip) + string([]byte{byte(port >> 8), byte(port)})}
}

func (c *trackerClient) close() { c.tr.CloseIdleConnections() }

// Ports of the origin host that the client's own announces name: opentracker
// tells peers apart by address and port, so these are never the seeder.
const (
	acceptsPort   = 1
	hasSeederPort = 2
)

// accepts checks that the tracker serves the torrent, that is, has it in
// the whitelist it loads in a thread of its own after it listens: it
// announces a seeder and stops it again, so that it registers nobody. (A
// "stopped" announce alone is answered for any info hash: opentracker
// checks its whitelist only for a peer it adds.)
func (c *trackerClient) accepts(ctx context.Context) error {
	p := newAnnouncer(acceptsPort, 0)
	_, err := c.announce(ctx, p, "started")
	c.announce(ctx, p, "stopped")
	return err
}

// hasSeeder checks that the tracker hands out the seeder (the origin's
// aria2) as a downloader's first announce would see it: it announces a peer
// that wants the torrent, then stops it again. Any peer would not do:
// opentracker hands the announcing peer itself out too.
func (c *trackerClient) hasSeeder(ctx context.Context) error {
	p := newAnnouncer(hasSeederPort, 1)
	reply, err := c.announce(ctx, p, "started")
	c.announce(ctx, p, "stopped")
	if err != nil {
		return err
	}
	peers, _ := reply["peers"].(string)
	for i := 0; i+6 <= len(peers); i += 6 {
		if peers[i:i+6] == c.seeder {
			return nil
		}
	}
	return fmt.Errorf("tracker does not hand out the seeder yet (%d peers)", len(peers)/6)
}

// announcer is a peer the client announces: an id, a port of the origin
// host and the bytes it still wants.
type announcer struct {
	id   [20]byte
	port int
	left int64
}

func newAnnouncer(port int, left int64) announcer {
	p := announcer{port: port, left: left}
	copy(p.id[:], "-FL0000-")
	rand.Read(p.id[8:])
	return p
}

// announce sends p's announce with event and returns the tracker's reply.
func (c *trackerClient) announce(ctx context.Context, p announcer, event string) (map[string]any, error) {
	q := fmt.Sprintf("info_hash=%s&peer_id=%s&port=%d&uploaded=0&downloaded=0&left=%d&event=%s&compact=1&numwant=50",
		trackerEscape(c.hash[:]), trackerEscape(p.id[:]), p.port, p.left, event)
	return c.get(ctx, "/announce?"+q)
}

// trackerEscape percent-encodes the bytes of an info hash or peer id for a
// tracker's query: every byte but RFC 3986's unreserved characters becomes
// %XX, as aria2 writes them. Not url.QueryEscape: it writes byte 0x20 as
// "+", which opentracker takes for byte 0x2B, so that it looks up another
// info hash and refuses it as not whitelisted (one torrent in 13 has a 0x20
// in its info hash).
func trackerEscape(b []byte) string {
	const hexDigits = "0123456789ABCDEF"
	var sb strings.Builder
	for _, c := range b {
		if isUnreserved(c) {
			sb.WriteByte(c)
			continue
		}
		sb.WriteByte('%')
		sb.WriteByte(hexDigits[c>>4])
		sb.WriteByte(hexDigits[c&15])
	}
	return sb.String()
}

// isUnreserved reports whether c is one of RFC 3986's unreserved
// characters, which a query may hold as they are.
func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// get requests path and decodes the bencoded dictionary of the reply,
// failing on the tracker's "failure reason".
func (c *trackerClient) get(ctx context.Context, path string) (map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTorrentBytes))
	if err != nil {
		return nil, fmt.Errorf("tracker reply: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("tracker: %s: %s", resp.Status, lastLines(body, 2))
	}
	v, err := bdecode(body)
	if err != nil {
		return nil, fmt.Errorf("tracker reply: %w", err)
	}
	reply, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("tracker reply is not a dictionary: %q", lastLines(body, 1))
	}
	if why, ok := reply["failure reason"].(string); ok {
		return nil, fmt.Errorf("tracker refuses: %s", why)
	}
	return reply, nil
}

// pollTracker calls query until it succeeds; it fails when the tracker or
// the seeder exited, ctx ended or trackerReadyWait passed.
func (t *torrentRun) pollTracker(ctx context.Context, what string, query func(context.Context) error) error {
	deadline := time.Now().Add(trackerReadyWait)
	for {
		err := query(ctx)
		if err == nil {
			return nil
		}
		for _, p := range []*toolProc{t.tracker, t.seeder} {
			if p.hasExited() {
				return fmt.Errorf("waiting until %s: %w", what, p.exitError())
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v: %w%s", what, trackerReadyWait, err, t.seeder.logNote())
		}
		if err := waitOrDone(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("waiting until %s: %w", what, err)
		}
	}
}
