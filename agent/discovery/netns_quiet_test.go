//go:build linux

package discovery

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sentPackets returns how many packets the hosts of l have sent so far:
// what the bridge's ends of their veths received.
func (l *lab) sentPackets() int64 {
	l.t.Helper()
	out, err := exec.Command("ip", "-n", l.bridge, "-s", "-j", "link", "show").Output()
	if err != nil {
		l.t.Fatalf("ip link show: %v", err)
	}
	var links []struct {
		Name  string `json:"ifname"`
		Stats struct {
			RX struct {
				Packets int64 `json:"packets"`
			} `json:"rx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		l.t.Fatalf("ip link show: %v", err)
	}
	var n int64
	for _, ln := range links {
		if strings.HasPrefix(ln.Name, "v") {
			n += ln.Stats.RX.Packets
		}
	}
	return n
}

var browseLine = regexp.MustCompile(`msg="mDNS browse" answers=(\d+)`)

// browseAnswers returns, for each browse a has logged, how many agents
// answered it.
func browseAnswers(a *agent) []int {
	var out []int
	for _, m := range browseLine.FindAllStringSubmatch(a.stderr.String(), -1) {
		n, _ := strconv.Atoi(m[1])
		out = append(out, n)
	}
	return out
}

// startFleet starts n agents of fleetX, in hosts first..first+n-1.
func (l *lab) startFleet(n, first int, spec helperSpec) []*agent {
	l.t.Helper()
	var out []*agent
	for i := range n {
		ns, _ := l.addHost(fmt.Sprintf("r%d", first+i), first+i, true, false)
		spec.Self = Self{AgentID: fmt.Sprintf("%016x", 0xf1ee7000+first+i), FleetID: fleetX, Proto: "fleetcast-peer/1", Port: 7000 + first + i}
		out = append(out, l.start(ns, spec))
	}
	return out
}

// TestNetnsQuietDiscovery: twelve agents that know each other answer a
// browse about Answers (3) times, and a browser that starts among them
// finds some at once and all of them over its next browses.
func TestNetnsQuietDiscovery(t *testing.T) {
	l := newLab(t)
	spec := helperSpec{BrowseInterval: 300 * time.Millisecond, BrowseMax: 600 * time.Millisecond, Answers: 3}
	const n = 12
	fleet := l.startFleet(n, 10, spec)
	waitFor(t, "each agent to know 3 others", 20*time.Second, func() bool {
		for _, a := range fleet {
			if len(a.report().Peers) < 3 {
				return false
			}
		}
		return true
	})
	start := time.Now()
	b := l.startFleet(1, 100, spec)[0]
	waitFor(t, "the new agent to find a peer", 3*time.Second, func() bool { return len(b.report().Peers) > 0 })
	t.Logf("the new agent found %d peers in %v", len(b.report().Peers), time.Since(start).Round(time.Millisecond))
	waitFor(t, "the new agent to learn all the others", 60*time.Second, func() bool { return len(b.report().Peers) == n })
	answers := browseAnswers(b)
	t.Logf("the new agent learned all %d others in %v and %d browses, answered by %v", n, time.Since(start).Round(time.Millisecond), len(answers), answers)
	sum := 0
	for _, a := range answers {
		sum += a
		if a > 9 {
			t.Errorf("a browse got %d answers of %d agents that each answer about %d of %d browses; want at most 9", a, n, 3, n+1)
		}
	}
	if len(answers) < 2 || float64(sum)/float64(len(answers)) > n/2 {
		t.Errorf("browses answered by %v; want several, about 3 answers each", answers)
	}
}

// TestNetnsMDNSTraffic measures mDNS packets per second on a LAN of N
// agents, before (every agent answers every browse, every BrowseInterval)
// and after. It runs only with FLEETCAST_MDNS_TRAFFIC set to the sizes,
// e.g. "8,24,48": a browse interval of 1s (the default is 10s, so divide
// the rates by 10), backing off to 30s, with 24 answers a browse.
func TestNetnsMDNSTraffic(t *testing.T) {
	sizes := os.Getenv("FLEETCAST_MDNS_TRAFFIC")
	if sizes == "" {
		t.Skip("set FLEETCAST_MDNS_TRAFFIC=8,24,48 to measure")
	}
	for _, size := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(size)
		if err != nil || n < 1 || n > 200 {
			t.Fatalf("FLEETCAST_MDNS_TRAFFIC: %q is not a size from 1 to 200", size)
		}
		for _, mode := range []struct {
			name           string
			spec           helperSpec
			settle, window time.Duration
		}{
			{"before", helperSpec{BrowseInterval: time.Second, BrowseMax: time.Second, Expiry: 90 * time.Second, Answers: -1}, 10 * time.Second, 20 * time.Second},
			{"after", helperSpec{BrowseInterval: time.Second, BrowseMax: 30 * time.Second, Expiry: 90 * time.Second, Answers: 24}, 75 * time.Second, 60 * time.Second},
		} {
			t.Run(fmt.Sprintf("%s/N=%d", mode.name, n), func(t *testing.T) {
				l := newLab(t)
				fleet := l.startFleet(n, 1, mode.spec)
				time.Sleep(mode.settle) // a measurement, not a test: the fleet reaches its steady state
				p0 := l.sentPackets()
				br0, an0 := browsesOf(fleet)
				time.Sleep(mode.window)
				p1 := l.sentPackets()
				br1, an1 := browsesOf(fleet)
				browses, answers := br1-br0, an1-an0
				known := 0
				for _, a := range fleet {
					known += len(a.report().Peers)
				}
				t.Logf("%s N=%d: %.1f packets/s, %d browses, %.1f answers/browse, %.1f packets/browse, each agent knows %.1f",
					mode.name, n, float64(p1-p0)/mode.window.Seconds(), browses, float64(answers)/float64(max(browses, 1)),
					float64(p1-p0)/float64(max(browses, 1)), float64(known)/float64(n))
			})
		}
	}
}

// browsesOf returns how many browses the agents of fleet have logged, and
// how many answers they got in all.
func browsesOf(fleet []*agent) (browses, answers int) {
	for _, a := range fleet {
		for _, n := range browseAnswers(a) {
			browses++
			answers += n
		}
	}
	return browses, answers
}
