package discovery

import (
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/mdns"

	"github.com/fleetcast/fleetcast/internal/testlog"
)

// clock is an injectable Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var self = Self{AgentID: idA, FleetID: fleetX, Proto: "fleetcast-peer/1", Port: 7331}

func testConfig(c *clock) Config {
	cfg := DefaultConfig()
	cfg.MDNS = false
	cfg.Expiry = time.Minute
	cfg.Now = c.Now
	return cfg
}

// logBuffer returns a logger that writes text to the returned buffer.
func logBuffer() (*slog.Logger, *testlog.Buffer) {
	var b testlog.Buffer
	return slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})), &b
}

func mustNew(t *testing.T, cfg Config) *Discovery {
	t.Helper()
	d, err := New(cfg, self, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func addrs(peers []Peer) string {
	var s []string
	for _, p := range peers {
		s = append(s, p.Addr)
	}
	return strings.Join(s, " ")
}

func info(id, fleet string, port int) txtInfo {
	return txtInfo{ID: id, FleetID: fleet, Proto: "fleetcast-peer/1", Port: port}
}

func TestNewValidates(t *testing.T) {
	c := newClock()
	tests := []struct {
		name string
		edit func(*Config, *Self)
		err  string
	}{
		{"static", func(c *Config, s *Self) { c.Static = []string{"host-without-port"} }, "Static"},
		{"static port", func(c *Config, s *Self) { c.Static = []string{"h:0"} }, "Static"},
		{"interface", func(c *Config, s *Self) { c.Interface = "a/b" }, "Interface"},
		{"interface space", func(c *Config, s *Self) { c.Interface = "eth 0" }, "Interface"},
		{"static leading zero", func(c *Config, s *Self) { c.Static = []string{"h:07331"} }, "Static"},
		{"agent id", func(c *Config, s *Self) { s.AgentID = "x" }, "AgentID"},
		{"fleet id", func(c *Config, s *Self) { s.FleetID = "" }, "FleetID"},
		{"proto", func(c *Config, s *Self) { s.Proto = "" }, "Proto"},
		{"port", func(c *Config, s *Self) { s.Port = 70000 }, "Port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, s := testConfig(c), self
			tt.edit(&cfg, &s)
			if _, err := New(cfg, s, nil); err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("New error = %v; want one naming %s", err, tt.err)
			}
		})
	}
}

func TestPeersFiltersAndExpires(t *testing.T) {
	c := newClock()
	cfg := testConfig(c)
	cfg.Static = []string{"[::1]:7000", "10.0.0.9:7000"}
	d := mustNew(t, cfg)
	d.seenMDNS("10.0.0.2:7331", info(idB, fleetX, 7331)) // same fleet
	d.seenMDNS("10.0.0.3:7331", info(idC, fleetY, 7331)) // other fleet
	d.seenMDNS("10.0.0.1:7331", info(idA, fleetX, 7331)) // ourselves
	d.seenMDNS("10.0.0.2:7331", info(idB, fleetX, 7331)) // reported again
	if got, want := addrs(d.Peers()), "10.0.0.2:7331 10.0.0.9:7000 [::1]:7000"; got != want {
		t.Fatalf("Peers = %s; want %s", got, want)
	}
	c.Add(59 * time.Second)
	if got := len(d.Peers()); got != 3 {
		t.Fatalf("before expiry: %d peers; want 3", got)
	}
	c.Add(time.Second)
	if got, want := addrs(d.Peers()), "10.0.0.9:7000 [::1]:7000"; got != want {
		t.Fatalf("after expiry Peers = %s; want %s (static never expire)", got, want)
	}
}

func TestSeen(t *testing.T) {
	c := newClock()
	cfg := testConfig(c)
	cfg.Static = []string{"10.0.0.9:7000", "10.0.0.8:7000"}
	d := mustNew(t, cfg)
	d.Seen("10.0.0.9:7000", idB, fleetX)
	d.Seen("10.0.0.8:7000", idC, fleetY) // static of another fleet: not listed
	d.Seen("10.0.0.7:7000", idC, fleetX) // unknown: remembered
	d.Seen("not an address", idC, fleetX)
	d.Seen("10.0.0.6:7000", "BAD", fleetX)
	peers := d.Peers()
	if got, want := addrs(peers), "10.0.0.7:7000 10.0.0.9:7000"; got != want {
		t.Fatalf("Peers = %s; want %s", got, want)
	}
	if p := peers[1]; p.ID != idB || p.FleetID != fleetX || p.Source != SourceStatic {
		t.Fatalf("static peer after Seen = %+v", p)
	}
	if p := peers[0]; p.ID != idC || p.Source != SourceRemembered || !p.LastSeen.Equal(c.Now()) {
		t.Fatalf("new peer after Seen = %+v", p)
	}
	d.Seen("10.0.0.8:7000", idC, fleetX) // fleet changed back
	if got := len(d.Peers()); got != 3 {
		t.Fatalf("after Seen with our fleet: %d peers; want 3", got)
	}
}

func TestSeenRefreshesLastSeen(t *testing.T) {
	c := newClock()
	d := mustNew(t, testConfig(c))
	d.seenMDNS("10.0.0.2:7331", info(idB, fleetX, 7331))
	c.Add(50 * time.Second)
	d.Seen("10.0.0.2:7331", idB, fleetX)
	c.Add(50 * time.Second)
	if got := addrs(d.Peers()); got != "10.0.0.2:7331" {
		t.Fatalf("Peers = %q; want the peer kept alive by Seen", got)
	}
}

func TestMovedAgentLeavesOldAddress(t *testing.T) {
	d := mustNew(t, testConfig(newClock()))
	d.seenMDNS("10.0.0.2:7331", info(idB, fleetX, 7331))
	d.seenMDNS("10.0.0.5:7331", info(idB, fleetX, 7331))
	if got := addrs(d.Peers()); got != "10.0.0.5:7331" {
		t.Fatalf("Peers = %q; want only the new address", got)
	}
}

func TestTableBounded(t *testing.T) {
	c := newClock()
	cfg := testConfig(c)
	cfg.Static = []string{"static:1"}
	d := mustNew(t, cfg)
	for i := range maxPeers + 10 {
		c.Add(time.Millisecond)
		d.Seen(net.JoinHostPort("10.1.0.1", strconv.Itoa(i+1)), "", "")
	}
	peers := d.Peers()
	if len(peers) != maxPeers+1 {
		t.Fatalf("%d peers; want %d remembered plus the static one", len(peers), maxPeers)
	}
	for _, p := range peers {
		if p.Addr == "10.1.0.1:1" {
			t.Fatal("the oldest peer was not evicted")
		}
	}
}

func TestChanged(t *testing.T) {
	c := newClock()
	d := mustNew(t, testConfig(c))
	expect := func(want bool, what string) {
		t.Helper()
		select {
		case <-d.Changed():
			if !want {
				t.Fatalf("%s: Changed signalled", what)
			}
		default:
			if want {
				t.Fatalf("%s: Changed not signalled", what)
			}
		}
	}
	expect(false, "new")
	d.seenMDNS("10.0.0.2:7331", info(idB, fleetX, 7331))
	d.seenMDNS("10.0.0.3:7331", info(idC, fleetX, 7331)) // coalesced in the buffer
	expect(true, "two peers added")
	expect(false, "drained")
	c.Add(time.Second)
	d.seenMDNS("10.0.0.2:7331", info(idB, fleetX, 7331))
	expect(false, "only LastSeen changed")
	d.seenMDNS("10.0.0.4:7331", info(idA, fleetX, 7331))
	d.seenMDNS("10.0.0.5:7331", info(idA, fleetY, 7331))
	expect(false, "self and other fleet")
	d.Seen("10.0.0.2:7331", idB, fleetY)
	expect(true, "peer moved to another fleet")
	c.Add(2 * time.Minute)
	d.sweep()
	expect(true, "expiry")
}

func TestHandleEntry(t *testing.T) {
	txt := formatTXT(info(idB, fleetX, 7331))
	name := idB + "._fleetcast._tcp.local."
	tests := []struct {
		name  string
		iface string
		e     mdns.ServiceEntry
		want  string
	}{
		{"ipv4", "", mdns.ServiceEntry{Name: name, AddrV4: net.ParseIP("198.18.0.2"), Port: 7331, InfoFields: txt}, "198.18.0.2:7331"},
		{"ipv4 preferred", "", mdns.ServiceEntry{Name: name, AddrV4: net.ParseIP("198.18.0.2"), AddrV6: net.ParseIP("2001:db8::2"), Port: 7331, InfoFields: txt}, "198.18.0.2:7331"},
		{"ipv6 only", "", mdns.ServiceEntry{Name: name, AddrV6: net.ParseIP("2001:db8::2"), Port: 7331, InfoFields: txt}, "[2001:db8::2]:7331"},
		{"link-local without interface", "", mdns.ServiceEntry{Name: name, AddrV6: net.ParseIP("fe80::2"), Port: 7331, InfoFields: txt}, ""},
		{"link-local with interface", "eth1", mdns.ServiceEntry{Name: name, AddrV6: net.ParseIP("fe80::2"), Port: 7331, InfoFields: txt}, "[fe80::2%eth1]:7331"},
		{"no address", "", mdns.ServiceEntry{Name: name, Port: 7331, InfoFields: txt}, ""},
		{"port mismatch", "", mdns.ServiceEntry{Name: name, AddrV4: net.ParseIP("198.18.0.2"), Port: 7332, InfoFields: txt}, ""},
		{"other service", "", mdns.ServiceEntry{Name: idB + "._http._tcp.local.", AddrV4: net.ParseIP("198.18.0.2"), Port: 7331, InfoFields: txt}, ""},
		{"name not id", "", mdns.ServiceEntry{Name: idC + "._fleetcast._tcp.local.", AddrV4: net.ParseIP("198.18.0.2"), Port: 7331, InfoFields: txt}, ""},
		{"bad txt", "", mdns.ServiceEntry{Name: name, AddrV4: net.ParseIP("198.18.0.2"), Port: 7331, InfoFields: txt[1:]}, ""},
		{"ourselves", "", mdns.ServiceEntry{Name: idA + "._fleetcast._tcp.local.", AddrV4: net.ParseIP("198.18.0.1"), Port: 7331, InfoFields: formatTXT(info(idA, fleetX, 7331))}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(newClock())
			cfg.Interface = tt.iface
			d := mustNew(t, cfg)
			d.handleEntry(&tt.e)
			d.handleEntry(&tt.e) // the client reports entries several times
			if got := addrs(d.Peers()); got != tt.want {
				t.Fatalf("Peers = %q; want %q", got, tt.want)
			}
		})
	}
}
