package discovery

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/mdns"
	"github.com/miekg/dns"
)

// How discovery keeps mDNS traffic linear in the number of agents N (every
// agent answering every browse, every BrowseInterval, costs N² packets):
//
//   - A responder that knows n live peers answers a browse with probability
//     Answers/(n+1) (always while n < Answers), so a browse gets about
//     Answers answers however large the fleet, and successive browses see
//     different agents (answerChance, answerZone).
//   - Once Answers live peers are known, the interval between browses
//     doubles at each browse up to BrowseMax, and is BrowseInterval again
//     when fewer are known (browseSchedule).
//   - Every agent hears every browse (queries are multicast), so a browse
//     from a known peer's address keeps that peer live (watchQueries): a
//     peer that is not in every answer does not expire, as long as it
//     browses at least every Expiry.

// sameBrowse is how close together two browse questions must arrive to
// get the same decision: a dual-stack browse asks twice, over IPv4 and
// IPv6, and is answered twice or not at all.
const sameBrowse = 100 * time.Millisecond

// answerChance is the probability with which an agent that knows known live
// peers answers a browse, for a target of answers answers per browse (0:
// every browse is answered).
func answerChance(known, answers int) float64 {
	if answers <= 0 || known < answers {
		return 1
	}
	return float64(answers) / float64(known+1)
}

// answerZone is the responder's mdns.Zone: it passes a browse for Service
// (a PTR or ANY question) on to the service's zone only when answer says so,
// once per browse; every other question (the instance's records, asked when
// an answer was incomplete) is always answered. Records is called from the
// responder's goroutines, one per address family.
type answerZone struct {
	zone   mdns.Zone
	now    func() time.Time
	answer func() bool

	mu       sync.Mutex
	last     time.Time // when answer was last called
	answered bool      // what it said
}

var _ mdns.Zone = (*answerZone)(nil)

func (z *answerZone) Records(q dns.Question) []dns.RR {
	if isBrowse(q) && !z.decide() {
		return nil
	}
	return z.zone.Records(q)
}

// decide calls answer, or repeats its last decision for the other address
// family's copy of the same browse.
func (z *answerZone) decide() bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	now := z.now()
	if d := now.Sub(z.last); z.last.IsZero() || d < 0 || d >= sameBrowse {
		z.last, z.answered = now, z.answer()
	}
	return z.answered
}

// isBrowse tells whether q asks for the instances of Service.
func isBrowse(q dns.Question) bool {
	return (q.Qtype == dns.TypePTR || q.Qtype == dns.TypeANY) && strings.EqualFold(q.Name, Service+".local.")
}

// answerBrowse decides whether to answer one browse.
func (d *Discovery) answerBrowse() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := answerChance(d.liveCountLocked(d.now()), d.cfg.Answers)
	return p >= 1 || d.rand() < p
}

// liveCountLocked is len(d.peersLocked(now)).
func (d *Discovery) liveCountLocked(now time.Time) int {
	n := 0
	for _, p := range d.peers {
		if d.live(p, now) && p.ID != d.self.AgentID && (p.FleetID == "" || p.FleetID == d.self.FleetID) {
			n++
		}
	}
	return n
}

// known returns how many live peers of our fleet are known.
func (d *Discovery) known() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.liveCountLocked(d.now())
}

// browseSchedule is the interval between browses after the quick ones at
// start: doubling at each browse up to BrowseMax once Answers live peers
// are known or a browse found no new peer (a small LAN, all known), and
// BrowseInterval again when a browse finds one, when fewer peers are known
// than at the last browse (some expired), or when a new agent browses.
type browseSchedule struct {
	base, max time.Duration
	answers   int           // 0: never back off
	interval  time.Duration // the current interval
	lastKnown int           // live peers known after the last browse
}

func newBrowseSchedule(cfg Config) browseSchedule {
	return browseSchedule{base: cfg.BrowseInterval, max: max(cfg.BrowseMax, cfg.BrowseInterval),
		answers: cfg.Answers, interval: cfg.BrowseInterval}
}

// enough tells whether known live peers are enough to back off.
func (s *browseSchedule) enough(known int) bool {
	return s.answers > 0 && known >= s.answers
}

// next returns the interval from the start of the browse that just ended
// to the start of the next, knowing known live peers after it, of which it
// found some new ones or not.
func (s *browseSchedule) next(known int, found bool) time.Duration {
	if s.answers > 0 && (s.enough(known) || !found) {
		s.interval = min(2*s.interval, s.max)
	} else {
		s.interval = s.base
	}
	s.lastKnown = known
	return s.interval
}

// shorten returns the interval to BrowseInterval when it is longer and
// fewer live peers are known than after the last browse, and fewer than
// Answers (they expired); it tells whether it did.
func (s *browseSchedule) shorten(known int) bool {
	if s.interval <= s.base || s.enough(known) || known >= s.lastKnown {
		return false
	}
	s.interval = s.base
	return true
}

// reset returns the interval to BrowseInterval (a new agent browsed) and
// tells whether it was longer.
func (s *browseSchedule) reset() bool {
	if s.interval <= s.base {
		return false
	}
	s.interval = s.base
	return true
}

// mdnsGroup6 is the IPv6 mDNS group and port (RFC 6762).
var mdnsGroup6 = &net.UDPAddr{IP: net.ParseIP("ff02::fb"), Port: 5353}

// maxQueryPacket bounds one mDNS packet read by the query watcher.
const maxQueryPacket = 9000

// queryWatcher listens to the mDNS groups for browses of Service and passes
// each querier's address to heard, from one goroutine per group.
type queryWatcher struct {
	conns []*net.UDPConn
	wg    sync.WaitGroup
}

// watchQueries starts a queryWatcher on iface (nil: the OS's choice) for
// the groups it can join.
func watchQueries(iface *net.Interface, heard func(netip.Addr)) (*queryWatcher, error) {
	w := &queryWatcher{}
	var errs []error
	for _, g := range []struct {
		network string
		group   *net.UDPAddr
	}{{"udp4", mdnsGroup}, {"udp6", mdnsGroup6}} {
		c, err := net.ListenMulticastUDP(g.network, iface, g.group)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		w.conns = append(w.conns, c)
	}
	if len(w.conns) == 0 {
		return nil, errors.Join(errs...)
	}
	for _, c := range w.conns {
		w.wg.Go(func() { readQueries(c, heard) })
	}
	return w, nil
}

// stop closes the sockets and waits for the goroutines.
func (w *queryWatcher) stop() {
	for _, c := range w.conns {
		c.Close()
	}
	w.wg.Wait()
}

// readQueries reads c until it fails (it is closed).
func readQueries(c *net.UDPConn, heard func(netip.Addr)) {
	buf := make([]byte, maxQueryPacket)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if isBrowseQuery(buf[:n]) {
			heard(from.Addr())
		}
	}
}

// isBrowseQuery tells whether pkt is an mDNS query that asks for Service.
func isBrowseQuery(pkt []byte) bool {
	var m dns.Msg
	if m.Unpack(pkt) != nil || m.Response || m.Opcode != dns.OpcodeQuery {
		return false
	}
	for _, q := range m.Question {
		if isBrowse(q) {
			return true
		}
	}
	return false
}

// heardQuery refreshes the live peers (not static ones) at address ip,
// which has just browsed: an agent that browses is running. Several agents
// on one host share the refresh.
//
// A browse from an address of no peer it knows, not its own, while it
// knows fewer than Answers peers, is a new agent's (or one that was
// forgotten): discovery then browses again soon (see Run), so that agents
// whose browses have backed off learn of it.
func (d *Discovery) heardQuery(ip netip.Addr) {
	ip = ip.Unmap().WithZone("")
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	heard := false
	for _, p := range d.peers {
		if ap, err := netip.ParseAddrPort(p.Addr); err == nil && ap.Addr().Unmap().WithZone("") == ip {
			heard = true
			if p.Source != SourceStatic && d.live(p, now) {
				p.LastSeen = now
			}
		}
	}
	// Only while it knows fewer than Answers peers: past that a browse gets
	// a sample of answers and many running agents are not known, and a
	// new one is learned in later samples. An IPv6 link-local source (the
	// IPv6 copy of a browse) names no peer's advertised address.
	if !heard && !d.own[ip] && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() &&
		(d.cfg.Answers <= 0 || d.liveCountLocked(now) < d.cfg.Answers) {
		select {
		case d.stranger <- struct{}{}:
		default:
		}
	}
}

// ownAddrs lists this host's addresses.
func ownAddrs() map[netip.Addr]bool {
	own := make(map[netip.Addr]bool)
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return own
	}
	for _, a := range addrs {
		if pfx, err := netip.ParsePrefix(a.String()); err == nil {
			own[pfx.Addr().Unmap().WithZone("")] = true
		}
	}
	return own
}
