package discovery

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/hashicorp/mdns"
	"github.com/miekg/dns"
)

func TestAnswerChance(t *testing.T) {
	for _, tt := range []struct {
		known, answers int
		want           float64
	}{
		{0, 24, 1}, {23, 24, 1}, {24, 24, 24.0 / 25}, {47, 24, 0.5}, {255, 24, 24.0 / 256},
		{1000, 0, 1}, {3, 1, 0.25},
	} {
		if got := answerChance(tt.known, tt.answers); got != tt.want {
			t.Errorf("answerChance(%d, %d) = %v; want %v", tt.known, tt.answers, got, tt.want)
		}
	}
}

// quietDiscovery returns a Discovery that knows n live peers of its fleet
// (and one of another fleet, which does not count), with rnd as its random
// source.
func quietDiscovery(t *testing.T, c *clock, n, answers int, rnd func() float64) *Discovery {
	t.Helper()
	cfg := testConfig(c)
	cfg.Answers, cfg.Rand, cfg.Expiry = answers, rnd, 1000*time.Hour
	d := mustNew(t, cfg)
	for i := range n {
		d.seenMDNS(fmt.Sprintf("198.18.1.%d:7331", i+1), info(fmt.Sprintf("%016x", i+1), fleetX, 7331))
	}
	d.seenMDNS("198.18.2.1:7331", info("00000000000000ff", fleetY, 7331))
	if got := d.known(); got != n {
		t.Fatalf("known() = %d; want %d", got, n)
	}
	return d
}

func testZone(t *testing.T, c *clock, d *Discovery) *answerZone {
	t.Helper()
	svc, err := mdns.NewMDNSService(self.AgentID, Service, "local.", self.AgentID+".local.",
		self.Port, []net.IP{net.IPv4(198, 18, 0, 1)}, formatTXT(info(self.AgentID, self.FleetID, self.Port)))
	if err != nil {
		t.Fatal(err)
	}
	return &answerZone{zone: svc, now: c.Now, answer: d.answerBrowse}
}

var browseQ = dns.Question{Name: "_fleetcast._tcp.local.", Qtype: dns.TypePTR, Qclass: dns.ClassINET}

// TestAnswerZone: a browse is answered with the chance answerChance gives
// (the random source says which), both copies of a dual-stack browse alike;
// other questions always.
func TestAnswerZone(t *testing.T) {
	c := newClock()
	draws := []float64{0.5, 0.1, 0.9}
	rnd := func() float64 { v := draws[0]; draws = draws[1:]; return v }
	d := quietDiscovery(t, c, 47, 24, rnd) // chance 0.5
	z := testZone(t, c, d)
	instance := dns.Question{Name: self.AgentID + "._fleetcast._tcp.local.", Qtype: dns.TypeANY, Qclass: dns.ClassINET}
	for i, want := range []bool{false, true, false} {
		c.Add(time.Second)
		if got := len(z.Records(browseQ)) > 0; got != want {
			t.Errorf("browse %d answered = %v; want %v", i, got, want)
		}
		c.Add(sameBrowse / 2) // the IPv6 copy of the same browse
		if got := len(z.Records(browseQ)) > 0; got != want {
			t.Errorf("browse %d, second copy answered = %v; want %v as the first", i, got, want)
		}
		if len(z.Records(instance)) == 0 {
			t.Errorf("browse %d: question for the instance not answered", i)
		}
	}
	if len(draws) != 0 {
		t.Errorf("%d draws left; want one per browse", len(draws))
	}
}

// TestAnswerZoneFewPeers: an agent that knows fewer than Answers peers
// answers every browse without drawing.
func TestAnswerZoneFewPeers(t *testing.T) {
	c := newClock()
	d := quietDiscovery(t, c, 23, 24, func() float64 { t.Fatal("drew a random number"); return 0 })
	z := testZone(t, c, d)
	for range 5 {
		c.Add(time.Second)
		if len(z.Records(browseQ)) == 0 {
			t.Fatal("browse not answered")
		}
	}
}

// TestAnswersPerBrowse: N responders that each know the others answer a
// browse about Answers times, whatever N.
func TestAnswersPerBrowse(t *testing.T) {
	for _, n := range []int{10, 25, 50, 250} {
		c := newClock()
		rng := rand.New(rand.NewPCG(1, uint64(n)))
		d := quietDiscovery(t, c, n-1, 24, rng.Float64)
		z := testZone(t, c, d)
		const browses = 200
		answered := 0
		for range browses * n { // each of n responders sees each browse once
			c.Add(sameBrowse)
			if len(z.Records(browseQ)) > 0 {
				answered++
			}
		}
		got, want := float64(answered)/browses, 24.0 // n·24/n
		if n-1 < 24 {
			want = float64(n) // everyone answers
		}
		if got < 0.9*want || got > 1.1*want {
			t.Errorf("N=%d: %.1f answers per browse; want about %.0f", n, got, want)
		}
	}
}

func TestBrowseSchedule(t *testing.T) {
	s := newBrowseSchedule(Config{BrowseInterval: 10 * time.Second, BrowseMax: 5 * time.Minute, Answers: 24})
	steps := []struct {
		known int
		found bool
		want  time.Duration
	}{
		// A LAN of fewer than Answers agents: the interval stays while
		// browses find new peers, and backs off once one finds none.
		{3, true, 10 * time.Second}, {23, true, 10 * time.Second}, {23, false, 20 * time.Second}, {23, false, 40 * time.Second},
		{23, true, 10 * time.Second},
		// Answers peers known: back off whatever a browse finds.
		{24, true, 20 * time.Second}, {30, true, 40 * time.Second},
		{30, false, 80 * time.Second}, {30, true, 160 * time.Second}, {30, false, 5 * time.Minute}, {30, false, 5 * time.Minute},
		{10, true, 10 * time.Second}, {24, false, 20 * time.Second},
	}
	for i, st := range steps {
		if got := s.next(st.known, st.found); got != st.want {
			t.Errorf("step %d: next(%d, %v) = %v; want %v", i, st.known, st.found, got, st.want)
		}
	}
	// Between browses, fewer known peers than after the last browse (some
	// expired) bring the interval back.
	if s.shorten(24) || s.interval != 20*time.Second {
		t.Errorf("shorten(24) shortened %v", s.interval)
	}
	if !s.shorten(23) || s.interval != 10*time.Second {
		t.Errorf("shorten(23): interval %v; want 10s", s.interval)
	}
	if s.shorten(0) {
		t.Error("shorten at the base interval reported a change")
	}
	// A small LAN all known: only a lost peer shortens it.
	s.next(5, false)
	if s.interval != 20*time.Second || s.shorten(5) || !s.shorten(4) {
		t.Errorf("small LAN: interval %v, shorten(5) must not and shorten(4) must bring it back", s.interval)
	}
	// A new agent's browse brings it back.
	s.next(5, false)
	if !s.reset() || s.interval != 10*time.Second || s.reset() {
		t.Errorf("reset: interval %v; want 10s, once", s.interval)
	}
	// Without Answers, or with BrowseMax below BrowseInterval, no backoff.
	for _, cfg := range []Config{
		{BrowseInterval: time.Second, BrowseMax: time.Minute},
		{BrowseInterval: time.Second, Answers: 1},
	} {
		s := newBrowseSchedule(cfg)
		for range 3 {
			if got := s.next(100, false); got != time.Second {
				t.Errorf("%+v: next = %v; want 1s", cfg, got)
			}
		}
	}
}

// TestHeardQuery: a browse from a peer's address keeps it live; static
// peers and other addresses are not touched.
func TestHeardQuery(t *testing.T) {
	c := newClock()
	cfg := testConfig(c)
	cfg.Static = []string{"198.18.1.1:9000"}
	d := mustNew(t, cfg)
	d.seenMDNS("198.18.1.1:7331", info(idB, fleetX, 7331))
	d.seenMDNS("198.18.1.2:7331", info(idC, fleetX, 7331))
	for range 5 {
		c.Add(cfg.Expiry / 2)
		d.heardQuery(netip.MustParseAddr("::ffff:198.18.1.1"))
	}
	if got := addrs(d.Peers()); got != "198.18.1.1:7331 198.18.1.1:9000" {
		t.Errorf("Peers = %q; want the one that browsed and the static one", got)
	}
	if got := d.peers["198.18.1.1:9000"].LastSeen; !got.Equal(newClock().Now()) {
		t.Errorf("static peer's LastSeen = %v; want unchanged", got)
	}

	// Browses from a known peer, this host or loopback are no stranger's;
	// one from an address no peer has is.
	stranger := func() bool {
		select {
		case <-d.stranger:
			return true
		default:
			return false
		}
	}
	d.own[netip.MustParseAddr("198.18.1.9")] = true
	for _, ip := range []string{"198.18.1.1", "198.18.1.9", "127.0.0.1", "::1", "fe80::1"} {
		if d.heardQuery(netip.MustParseAddr(ip)); stranger() {
			t.Errorf("a browse from %s signalled a new agent", ip)
		}
	}
	if d.heardQuery(netip.MustParseAddr("198.18.1.3")); !stranger() {
		t.Error("a browse from an unknown address did not signal a new agent")
	}
}

func TestIsBrowseQuery(t *testing.T) {
	pack := func(m *dns.Msg) []byte {
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	q := new(dns.Msg)
	q.SetQuestion("_fleetcast._tcp.local.", dns.TypePTR)
	other := new(dns.Msg)
	other.SetQuestion("_http._tcp.local.", dns.TypePTR)
	resp := new(dns.Msg)
	resp.SetQuestion("_fleetcast._tcp.local.", dns.TypePTR)
	resp.Response = true
	for name, tt := range map[string]struct {
		pkt  []byte
		want bool
	}{
		"browse": {pack(q), true}, "other service": {pack(other), false},
		"response": {pack(resp), false}, "garbage": {[]byte("xyz"), false},
	} {
		if got := isBrowseQuery(tt.pkt); got != tt.want {
			t.Errorf("%s: isBrowseQuery = %v; want %v", name, got, tt.want)
		}
	}
}
