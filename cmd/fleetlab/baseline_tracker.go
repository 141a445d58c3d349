//go:build linux

package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
}

func newTrackerClient(origin *netlab.Host, hash [20]byte) *trackerClient {
	tr := &http.Transport{DialContext: origin.DialContext, DisableKeepAlives: true}
	return &trackerClient{tr: tr, client: &http.Client{Transport: tr, Timeout: 2 * time.Second},
		base: "http://" + origin.IP() + ":" + trackerPort, hash: hash}
}

func (c *trackerClient) close() { c.tr.CloseIdleConnections() }

// accepts checks that the tracker serves the torrent (has it in its
// whitelist) with an announce of a peer that stops: it registers nobody.
func (c *trackerClient) accepts(ctx context.Context) error {
	var id [12]byte
	rand.Read(id[:])
	q := url.Values{"info_hash": {string(c.hash[:])}, "peer_id": {"-FL0000-" + string(id[:])},
		"port": {"1"}, "uploaded": {"0"}, "downloaded": {"0"}, "left": {"0"}, "event": {"stopped"}, "compact": {"1"}}
	_, err := c.get(ctx, "/announce?"+q.Encode())
	return err
}

// hasSeeder checks that the tracker hands out a peer for the torrent, as a
// downloader's first announce would see it: it announces a peer that wants
// the torrent, then stops it again. (opentracker's scrape was seen to list
// nothing for a torrent whose seeder announced every second.)
func (c *trackerClient) hasSeeder(ctx context.Context) error {
	var id [12]byte
	rand.Read(id[:])
	q := url.Values{"info_hash": {string(c.hash[:])}, "peer_id": {"-FL0000-" + string(id[:])},
		"port": {"2"}, "uploaded": {"0"}, "downloaded": {"0"}, "left": {"1"}, "event": {"started"},
		"compact": {"1"}, "numwant": {"50"}}
	reply, err := c.get(ctx, "/announce?"+q.Encode())
	q.Set("event", "stopped")
	c.get(ctx, "/announce?"+q.Encode())
	if err != nil {
		return err
	}
	if peers, _ := reply["peers"].(string); len(peers) < 6 {
		return fmt.Errorf("tracker hands out no peer yet (%d bytes of compact peers)", len(peers))
	}
	return nil
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
