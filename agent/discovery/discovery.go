// Package discovery finds other fleetcast agents: mDNS (_fleetcast._tcp), a
// static list, and peers remembered across restarts.
//
// It wraps github.com/hashicorp/mdns so that the rest of the agent never
// imports it. An agent advertises one mDNS service instance named after its
// agent id, with the TXT strings described at txtInfo, and browses for the
// others every Config.BrowseInterval, less often once it knows enough of
// them; see quiet.go for how it keeps mDNS traffic linear in the fleet's size.
package discovery

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Service is the DNS-SD service type fleetcast agents advertise.
const Service = "_fleetcast._tcp"

// maxPeers bounds the peer table (static peers not counted) and the state file.
const maxPeers = 256

// Self is what this agent advertises.
type Self struct {
	AgentID string // 16 hex digits
	FleetID string // 16 hex digits, or "open" when the fleet has no secret
	Proto   string // peer protocol version, e.g. "fleetcast-peer/1"
	Port    int    // TCP port of the peer protocol
}

// Validate reports the first invalid field of s.
func (s Self) Validate() error {
	if err := checkAgentID(s.AgentID); err != nil {
		return fmt.Errorf("discovery self AgentID: %w", err)
	}
	if err := checkFleetID(s.FleetID); err != nil {
		return fmt.Errorf("discovery self FleetID: %w", err)
	}
	if err := checkProto(s.Proto); err != nil {
		return fmt.Errorf("discovery self Proto: %w", err)
	}
	if s.Port < 1 || s.Port > 65535 {
		return fmt.Errorf("discovery self Port: %d is not in 1..65535", s.Port)
	}
	return nil
}

// Source says where a peer came from.
type Source string

// The sources of peers.
const (
	SourceMDNS       Source = "mdns"       // seen in an mDNS answer
	SourceStatic     Source = "static"     // listed in Config.Static; never expires
	SourceRemembered Source = "remembered" // loaded from the state file, or reported by Seen
)

// Peer is another agent (or a static address) to try.
type Peer struct {
	ID       string    `json:"id,omitempty"`    // agent id from TXT; "" for static/remembered peers not seen over mDNS
	Addr     string    `json:"addr"`            // host:port (IPv6 in brackets); the key of the table
	FleetID  string    `json:"fleet,omitempty"` // "" until known
	Proto    string    `json:"proto,omitempty"` // "" until known
	Source   Source    `json:"source"`
	LastSeen time.Time `json:"last_seen"`
}

// Config configures a Discovery. Its values come from the agent's
// configuration, which config.Validate has checked, naming the keys
// (browse_interval, browse_interval_max, discovery_answers, peer_expiry,
// mdns_interface, peers): New does not check those bounds again. It checks
// only what discovery alone knows (see New).
type Config struct {
	MDNS           bool             // advertise and browse
	Interface      string           // "" = let the OS choose / all; else the interface name to use for both; valid text of at most 64 bytes
	BrowseInterval time.Duration    // e.g. 10s; at least 100ms
	BrowseMax      time.Duration    // browses back off up to this once Answers live peers are known; less than BrowseInterval = BrowseInterval
	Answers        int              // about how many agents answer one browse (answerChance); 0 = all, and no backoff
	Expiry         time.Duration    // a peer not heard from for this long is dropped (mdns and remembered only); more than BrowseMax and BrowseInterval
	Static         []string         // host:port; never expire
	StateFile      string           // "" = do not remember; else JSON list of recently seen peers
	Now            func() time.Time // nil = time.Now (tests inject)
	Rand           func() float64   // in [0, 1); nil = math/rand/v2.Float64 (tests inject); called with the table locked
}

// DefaultConfig returns mDNS on all interfaces, browsing every 10s and
// backing off to every 5 minutes once 24 peers are known, answering about
// 24 to a browse, with peers expiring after 15 minutes and nothing
// remembered (the agent's defaults, docs/CONFIG.md).
func DefaultConfig() Config {
	return Config{MDNS: true, BrowseInterval: 10 * time.Second, BrowseMax: 5 * time.Minute,
		Answers: 64, Expiry: 15 * time.Minute}
}

// normalizeAddr checks host:port and writes IP literals canonically, so that
// a static "[::1]:7331" and the same address learned elsewhere share a key.
func normalizeAddr(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("address %q: %w", s, err)
	}
	if host == "" {
		return "", fmt.Errorf("address %q: missing host", s)
	}
	if _, err := parsePort(port); err != nil {
		return "", fmt.Errorf("address %q: %w", s, err)
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.String(), nil
	}
	return s, nil
}

// Discovery keeps the table of peers. Its methods are safe for concurrent use.
type Discovery struct {
	cfg     Config
	self    Self
	log     *slog.Logger
	now     func() time.Time
	rand    func() float64
	changed chan struct{}
	browsed chan struct{} // closed when the quick browses at start ended (at once without mDNS)
	once    sync.Once

	stranger chan struct{} // a browse from an address of no known peer was heard: a new agent (cap 1)

	mu        sync.Mutex
	peers     map[string]*Peer    // by Addr
	found     int                 // peers added by mDNS answers, ever: a browse that adds none finds the LAN as known
	own       map[netip.Addr]bool // this host's addresses: its own browses are not a stranger's
	lastSig   string              // signature of Peers() when last signalled
	savedSig  string              // signature of the remembered set last written
	lastSave  time.Time
	mdnsState mdnsState // owned by Run
}

// New checks what discovery alone knows of cfg, validates self, and loads
// remembered peers from cfg.StateFile. Of cfg it refuses an interface name
// with a space or a "/" (discovery writes it into link-local addresses, as
// their zone) and a static address it cannot parse as its table's key (a
// port written with a leading zero, for instance); cfg's bounds are the
// caller's (Config).
//
// A remembered peer counts as seen at load time, so it has one Expiry to be
// confirmed. A state file that cannot be read or is malformed or too large
// is logged at warn level and ignored (it is rewritten later): a lost peer
// cache costs only a slower start.
func New(cfg Config, self Self, log *slog.Logger) (*Discovery, error) {
	if strings.ContainsAny(cfg.Interface, " /") {
		return nil, fmt.Errorf("discovery config Interface: %q is not an interface name", cfg.Interface)
	}
	static := make([]string, len(cfg.Static))
	for i, s := range cfg.Static {
		addr, err := normalizeAddr(s)
		if err != nil {
			return nil, fmt.Errorf("discovery config Static: %w", err)
		}
		static[i] = addr
	}
	if err := self.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Discovery{cfg: cfg, self: self, log: log, now: cfg.Now, rand: cfg.Rand,
		changed: make(chan struct{}, 1), peers: map[string]*Peer{}, stranger: make(chan struct{}, 1), own: ownAddrs()}
	if d.now == nil {
		d.now = time.Now
	}
	if d.rand == nil {
		d.rand = rand.Float64
	}
	now := d.now()
	for _, addr := range static {
		d.peers[addr] = &Peer{Addr: addr, Source: SourceStatic, LastSeen: now}
	}
	d.browsed = make(chan struct{})
	if !cfg.MDNS {
		d.once.Do(func() { close(d.browsed) })
	}
	d.loadState(now)
	d.lastSig = signature(d.peersLocked(now))
	d.savedSig = rememberSig(d.rememberLocked(now))
	return d, nil
}

func (d *Discovery) loadState(now time.Time) {
	if d.cfg.StateFile == "" {
		return
	}
	remembered, err := readState(d.cfg.StateFile)
	if err != nil {
		d.log.Warn("ignoring discovery state file; starting without remembered peers",
			slog.String("file", d.cfg.StateFile), slog.String("reason", err.Error()))
		return
	}
	for _, p := range remembered {
		if _, ok := d.peers[p.Addr]; ok {
			continue
		}
		p.Source, p.LastSeen = SourceRemembered, now
		d.peers[p.Addr] = &p
	}
}

// Peers returns the live peers of our fleet in order of Addr: not ourselves
// (same AgentID), not expired, and not of another fleet (a peer whose fleet
// is not known yet, such as a static one, is included).
func (d *Discovery) Peers() []Peer {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.peersLocked(d.now())
}

func (d *Discovery) peersLocked(now time.Time) []Peer {
	out := []Peer{}
	for _, p := range d.peers {
		if d.live(p, now) && p.ID != d.self.AgentID && (p.FleetID == "" || p.FleetID == d.self.FleetID) {
			out = append(out, *p)
		}
	}
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.Addr, b.Addr) })
	return out
}

func (d *Discovery) live(p *Peer, now time.Time) bool {
	return p.Source == SourceStatic || now.Sub(p.LastSeen) < d.cfg.Expiry
}

// Seen records that the agent talked to addr successfully and learned its
// agent id and fleet id. It refreshes LastSeen and fills ID and FleetID; a
// peer whose fleet id differs from ours leaves Peers() until a later call
// says otherwise. An unknown addr is added as a remembered peer. Calls with
// an invalid address or id are ignored.
func (d *Discovery) Seen(addr, agentID, fleetID string) {
	addr, err := normalizeAddr(addr)
	if err == nil && agentID != "" {
		err = checkAgentID(agentID)
	}
	if err == nil && fleetID != "" {
		err = checkFleetID(fleetID)
	}
	if err != nil {
		d.log.Debug("ignoring invalid peer report", slog.String("reason", err.Error()))
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	p, ok := d.peers[addr]
	if !ok {
		p = &Peer{Addr: addr, Source: SourceRemembered}
		d.insertLocked(p, now)
	}
	p.LastSeen = now
	if agentID != "" {
		p.ID = agentID
	}
	if fleetID != "" {
		p.FleetID = fleetID
	}
	d.signalLocked(now)
}

// seenMDNS records an mDNS answer of the agent info at addr.
func (d *Discovery) seenMDNS(addr string, info txtInfo) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	for a, p := range d.peers { // an agent that moved leaves its old address
		if p.ID == info.ID && a != addr && p.Source != SourceStatic {
			delete(d.peers, a)
		}
	}
	p, ok := d.peers[addr]
	if !ok {
		p = &Peer{Addr: addr}
		d.insertLocked(p, now)
		d.found++
	}
	if p.Source != SourceStatic {
		p.Source = SourceMDNS
	}
	p.ID, p.FleetID, p.Proto, p.LastSeen = info.ID, info.FleetID, info.Proto, now
	d.signalLocked(now)
}

// insertLocked adds p, first evicting the least recently seen non-static
// peer when the table is full.
func (d *Discovery) insertLocked(p *Peer, now time.Time) {
	d.expireLocked(now)
	var oldest *Peer
	n := 0
	for _, q := range d.peers {
		if q.Source != SourceStatic {
			n++
			if oldest == nil || q.LastSeen.Before(oldest.LastSeen) {
				oldest = q
			}
		}
	}
	if n >= maxPeers {
		delete(d.peers, oldest.Addr)
	}
	d.peers[p.Addr] = p
}

// expireLocked drops the peers not heard from for Expiry.
func (d *Discovery) expireLocked(now time.Time) {
	for a, p := range d.peers {
		if !d.live(p, now) {
			delete(d.peers, a)
		}
	}
}

// Browsed is closed when the first, quick browses have ended, whether they
// found anyone or not (at once when mDNS is off): an agent that starts
// waits for it before it decides what to fetch from the origin.
func (d *Discovery) Browsed() <-chan struct{} { return d.browsed }

// Changed is signalled (a non-blocking send on a 1-buffered channel) when
// the result of Peers() changes, not counting LastSeen. Expiry by the
// passing of time is noticed at Run's next tick (every BrowseInterval,
// however long the interval between browses).
func (d *Discovery) Changed() <-chan struct{} {
	return d.changed
}

func (d *Discovery) signalLocked(now time.Time) {
	sig := signature(d.peersLocked(now))
	if sig == d.lastSig {
		return
	}
	d.lastSig = sig
	select {
	case d.changed <- struct{}{}:
	default:
	}
}

// signature identifies a peer list without its LastSeen times.
func signature(peers []Peer) string {
	var b strings.Builder
	for _, p := range peers {
		fmt.Fprintf(&b, "%s|%s|%s|%s|%s\n", p.Addr, p.ID, p.FleetID, p.Proto, p.Source)
	}
	return b.String()
}
