package config

import (
	"net"
	"strconv"
	"time"

	"github.com/fleetcast/fleetcast/internal/clip"
)

// PeerConfig is the part of Config about the other agents on the LAN
// (docs/CONFIG.md, "Peers"). Its keys sit at the top level of the file.
type PeerConfig struct {
	Peers           []string      `toml:"peers"`                  // static peers, host:port; for networks without multicast
	MDNS            bool          `toml:"mdns"`                   // advertise and browse _fleetcast._tcp; default true
	MDNSInterface   string        `toml:"mdns_interface"`         // interface for mDNS; default: the route to 224.0.0.251
	BrowseInterval  time.Duration `toml:"browse_interval"`        // default 10s
	BrowseMax       time.Duration `toml:"browse_interval_max"`    // browses back off up to this once discovery_answers peers are known; default 5m
	Answers         int           `toml:"discovery_answers"`      // about how many agents answer one browse; default 24; 1..256
	PeerExpiry      time.Duration `toml:"peer_expiry"`            // a peer not heard from for this long is dropped; default 15m
	FleetSecretFile string        `toml:"fleet_secret_file"`      // shared secret: mutual TLS between agents; default none (open LAN)
	PeerConnections int           `toml:"peer_connections"`       // parallel chunk requests to peers in all; default 8; 1..64
	PerPeer         int           `toml:"peer_requests_per_peer"` // parallel chunk requests to one peer; default 2; 1..16
	PeerTimeout     time.Duration `toml:"peer_timeout"`           // one chunk request to a peer; default 30s
	OriginGrace     time.Duration `toml:"origin_grace"`           // how long a stalled peer is waited for before the origin; default 3s
	BanDuration     time.Duration `toml:"ban_duration"`           // how long a peer that sent a bad chunk is ignored; default 10m
	UploadRate      int64         `toml:"upload_rate"`            // bytes/s served to peers in all; 0 = unlimited
	DownloadRate    int64         `toml:"download_rate"`          // bytes/s fetched from peers in all; 0 = unlimited
	MaxUploads      int           `toml:"max_uploads"`            // chunk requests served at once; default 16; 1..1024
	PeerDegree      int           `toml:"peer_degree"`            // state feeds in all: follow half, be followed by about half; default 32; 4..256
}

// defaultPeerConfig is Default's PeerConfig.
func defaultPeerConfig() PeerConfig {
	return PeerConfig{
		MDNS:            true,
		BrowseInterval:  10 * time.Second,
		BrowseMax:       5 * time.Minute,
		Answers:         64,
		PeerExpiry:      15 * time.Minute,
		PeerConnections: 8,
		PerPeer:         2,
		PeerTimeout:     30 * time.Second,
		OriginGrace:     3 * time.Second,
		BanDuration:     10 * time.Minute,
		MaxUploads:      16,
		PeerDegree:      32,
	}
}

// maxStaticPeers bounds the peers list.
const maxStaticPeers = 256

// maxDiscoveryAnswers bounds discovery_answers: discovery's peer table holds
// at most 256 peers.
const maxDiscoveryAnswers = 256

func (c *Config) checkPeers(add adder) {
	if len(c.Peers) > maxStaticPeers {
		add("peers", len(c.Peers), "at most %d static peers", maxStaticPeers)
	}
	for _, p := range c.Peers {
		host, port, err := net.SplitHostPort(p)
		if err != nil || host == "" || !validText(p) {
			add("peers", p, "want host:port")
			continue
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			add("peers", p, "port %q: want a number from 1 to 65535", clip.String(port, 64))
		}
	}
	if !validText(c.MDNSInterface) || len(c.MDNSInterface) > 64 {
		add("mdns_interface", c.MDNSInterface, "want an interface name")
	}
	if !validText(c.FleetSecretFile) {
		add("fleet_secret_file", c.FleetSecretFile, "control characters or invalid UTF-8")
	}
	checkRange(add, "peer_connections", c.PeerConnections, 1, 64)
	checkRange(add, "peer_requests_per_peer", c.PerPeer, 1, 16)
	checkRange(add, "max_uploads", c.MaxUploads, 1, 1024)
	checkRange(add, "peer_degree", c.PeerDegree, 4, 256)
	checkRange(add, "discovery_answers", c.Answers, 1, maxDiscoveryAnswers)
	for _, r := range []struct {
		key   string
		value int64
	}{{"upload_rate", c.UploadRate}, {"download_rate", c.DownloadRate}} {
		if r.value < 0 {
			add(r.key, r.value, "must be at least 0 bytes/s (0 means unlimited)")
		} else if r.value > 0 && r.value < 64<<10 {
			add(r.key, r.value, "must be 0 (unlimited) or at least 65536 bytes/s")
		}
	}
	for _, d := range []struct {
		key   string
		value time.Duration
	}{
		{"browse_interval", c.BrowseInterval},
		{"browse_interval_max", c.BrowseMax},
		{"peer_expiry", c.PeerExpiry},
		{"peer_timeout", c.PeerTimeout},
		{"ban_duration", c.BanDuration},
	} {
		if d.value <= 0 {
			add(d.key, d.value.String(), "must be more than 0s")
		}
	}
	if c.OriginGrace < 0 {
		add("origin_grace", c.OriginGrace.String(), "must be at least 0s")
	}
	if c.BrowseInterval > 0 && c.BrowseInterval < 100*time.Millisecond {
		add("browse_interval", c.BrowseInterval.String(), "must be at least 100ms")
	}
	if c.BrowseMax > 0 && c.BrowseMax < c.BrowseInterval {
		add("browse_interval_max", c.BrowseMax.String(), "must be at least browse_interval (%s)", c.BrowseInterval)
	}
	if c.BrowseInterval > 0 && c.PeerExpiry <= c.BrowseInterval {
		add("peer_expiry", c.PeerExpiry.String(), "must be more than browse_interval (%s)", c.BrowseInterval)
	}
}

// BrowseBackoffMax is the longest interval between browses: a peer is heard
// from at least that often (its browses, or this agent's), so it is
// browse_interval_max, or half of peer_expiry when that is less (a
// configuration from before browse_interval_max, with peer_expiry "1m",
// still works), and at least browse_interval.
func (c *PeerConfig) BrowseBackoffMax() time.Duration {
	return max(min(c.BrowseMax, c.PeerExpiry/2), c.BrowseInterval)
}
