//go:build linux

package main

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTrackerEscape checks that every byte of an info hash reaches the
// tracker as it is: only unreserved characters are left alone, and a
// decoder that does not take "+" for a space (opentracker's) gets the bytes
// back.
func TestTrackerEscape(t *testing.T) {
	var all []byte
	for c := range 256 {
		all = append(all, byte(c))
	}
	got := trackerEscape(all)
	if back, err := url.PathUnescape(got); err != nil || back != string(all) {
		t.Errorf("unescaped %q, %v; want every byte back", back, err)
	}
	if strings.Trim(got, "%0123456789ABCDEFabcdefghijklmnopqrstuvwxyzGHIJKLMNOPQRSTUVWXYZ-._~") != "" {
		t.Errorf("escaped %q: holds characters a query must escape", got)
	}
	for in, want := range map[string]string{" ": "%20", "+": "%2B", "%": "%25", "&": "%26", "=": "%3D", "a-Z.9_~": "a-Z.9_~"} {
		if got := trackerEscape([]byte(in)); got != want {
			t.Errorf("trackerEscape(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestTrackerAcceptsWhitelisted runs the lab's tracker with a whitelisted
// info hash that holds the bytes a query must escape (a space among them,
// which url.QueryEscape wrote as "+": opentracker then refused the torrent
// one run in 13). The client must find the tracker accepting that torrent,
// tell whether it hands out the seeder, and find it refusing a torrent not
// whitelisted.
func TestTrackerAcceptsWhitelisted(t *testing.T) {
	lab := newTestLab(t)
	if err := requireTools("opentracker"); err != nil {
		t.Fatal(err)
	}
	origin, err := lab.AddHost("origin", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	hash := [20]byte{' ', '+', '%', '&', '=', '?', '#', 0, 0xff, 'a', ' '}
	tr := &torrentRun{e: &env{origin: origin}, dir: t.TempDir(), hash: hash}
	tr.toolCtx, tr.cancel = context.WithCancel(ctx)
	defer tr.stop()
	if err := tr.startTracker(); err != nil {
		t.Fatal(err)
	}
	good := newTrackerClient(origin, hash)
	defer good.close()
	if err := tr.pollTracker(ctx, "tracker accepts the torrent", good.accepts); err != nil {
		t.Fatal(err)
	}
	if err := good.hasSeeder(ctx); err == nil || !strings.Contains(err.Error(), "not hand out the seeder") {
		t.Errorf("hasSeeder without a seeder: %v; want the seeder not handed out (the check's own announce must not count)", err)
	}
	port, _ := strconv.Atoi(btListenPort)
	if _, err := good.announce(ctx, newAnnouncer(port, 0), "started"); err != nil {
		t.Fatalf("announce a seeder on the origin's BitTorrent port: %v", err)
	}
	if err := good.hasSeeder(ctx); err != nil {
		t.Errorf("hasSeeder with a seeder: %v", err)
	}
	other := hash
	other[19] = 1
	bad := newTrackerClient(origin, other)
	defer bad.close()
	if err := bad.accepts(ctx); err == nil || !strings.Contains(err.Error(), "not authorized") {
		t.Errorf("accepts for a torrent not whitelisted: %v; want refused as not authorized", err)
	}
}
