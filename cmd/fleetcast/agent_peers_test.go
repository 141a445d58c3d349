package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/internal/nettest"
	"github.com/fleetcast/fleetcast/internal/origintest"
	"github.com/fleetcast/fleetcast/internal/testlog"
)

// loopAgent is one `fleetcast agent` process on loopback, with static peers.
type loopAgent struct {
	name   string
	port   int
	cmd    *exec.Cmd
	logBuf *testlog.Buffer
	done   chan struct{}
}

// loopStatus is the part of GET /v1/status these tests read.
type loopStatus struct {
	AgentID       string `json:"agent_id"`
	UploadedBytes int64  `json:"uploaded_bytes"`
	Peers         []struct {
		Addr   string `json:"addr"`
		ID     string `json:"id"`
		Banned bool   `json:"banned"`
	} `json:"peers"`
	Subscriptions []struct {
		InstalledSequence uint64 `json:"installed_sequence"`
		LastTransfer      *struct {
			Origin     int64 `json:"origin_bytes"`
			Peer       int64 `json:"peer_bytes"`
			PeerChunks int64 `json:"peer_chunks"`
		} `json:"last_transfer"`
	} `json:"subscriptions"`
}

var insecureClient = &http.Client{Timeout: 5 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}

// status reads an agent's status API over scheme (http or https).
func (a *loopAgent) status(scheme string) (loopStatus, error) {
	var st loopStatus
	resp, err := insecureClient.Get(fmt.Sprintf("%s://127.0.0.1:%d/v1/status", scheme, a.port))
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// TestAgentPeersOnLoopback runs three real agents on loopback that know each
// other from static peer lists (no multicast), behind one slow origin: all
// install the release, the origin sends about one copy, and the rest moves
// between the agents. The release is installed by a command, so that the
// three agents do not share a target.
func TestAgentPeersOnLoopback(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM on Windows")
	}
	c := newCLI(t)
	agents, origin := startLoopFleet(t, c)
	data := randomBytes(77, 4<<20)
	publishLoopRelease(t, c, data)
	waitLoopInstalled(t, agents, 1)
	var peerBytes int64
	for _, a := range agents {
		st, _ := a.status("https")
		tr := st.Subscriptions[0].LastTransfer
		t.Logf("%s: origin %d bytes, peers %d bytes, uploaded %d bytes", a.name, tr.Origin, tr.Peer, st.UploadedBytes)
		peerBytes += tr.Peer
		if len(st.Peers) != 2 {
			t.Errorf("%s lists %d peers, want 2: %+v", a.name, len(st.Peers), st.Peers)
		}
	}
	ratio := float64(origin.Served().Bytes) / float64(len(data))
	t.Logf("origin sent %.2fx the artifact; peers moved %d bytes", ratio, peerBytes)
	if ratio > 1.2 {
		t.Errorf("origin sent %.2fx the artifact to 3 agents; want about 1x", ratio)
	}
	if peerBytes < int64(len(data)) {
		t.Errorf("peers moved %d bytes; want at least one artifact (%d)", peerBytes, len(data))
	}
	// Without the secret, the peer API refuses.
	resp, err := insecureClient.Get(fmt.Sprintf("https://127.0.0.1:%d/v1/peer/state", agents[0].port))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("peer state without the fleet certificate: HTTP %d, want 403", resp.StatusCode)
	}
}

// startLoopFleet starts three agents on loopback that know each other from
// static peer lists and share a fleet secret, behind one counting origin
// serving c's "origin" directory, and waits until each follows the other two.
func startLoopFleet(t *testing.T, c *cli) ([]*loopAgent, *origintest.Origin) {
	t.Helper()
	return startLoopFleetOf(t, c, fleetcastBin, fleetcastBin, fleetcastBin)
}

// startLoopFleetOf is startLoopFleet with one agent per binary given.
func startLoopFleetOf(t *testing.T, c *cli, bins ...string) ([]*loopAgent, *origintest.Origin) {
	t.Helper()
	setupRoot(t, c, []string{"a"}, "1")
	c.ok("root", "publish", "--origin", "origin", "root.json")
	origin := origintest.New(t, c.path("origin"))
	c.ok("fleet-secret", "fleet.secret")

	var ports []int
	for range bins {
		ports = append(ports, nettest.FreePort(t))
	}
	var agents []*loopAgent
	for i, port := range ports {
		var peers []string
		for j, p := range ports {
			if j != i {
				peers = append(peers, fmt.Sprintf("%q", fmt.Sprintf("127.0.0.1:%d", p)))
			}
		}
		name := fmt.Sprintf("agent%d", i)
		cfg := fmt.Sprintf(`data_dir = %q
origin = %q
root = "root.json"
listen = "127.0.0.1:%d"
mdns = false
peers = [%s]
browse_interval = "200ms"
peer_expiry = "30s"
fleet_secret_file = "fleet.secret"
origin_grace = "2s"
poll_interval = "1s"
allowed_installers = ["command"]
[[subscription]]
product = "app"
channel = "stable"
`, name, origin.URL(), port, strings.Join(peers, ", "))
		c.write(name+".toml", []byte(cfg))
		agents = append(agents, startLoopAgentOf(t, c, bins[i], name, port))
	}
	// The agents run, as services do, and know each other before the
	// release is published.
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range agents {
		for {
			st, err := a.status("https")
			n := 0
			for _, p := range st.Peers {
				if p.ID != "" && !p.Banned {
					n++
				}
			}
			if err == nil && n == len(agents)-1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s follows %d peers (status %+v, %v)\nlog:\n%s", a.name, n, st, err, tail(a.logBuf.String(), 40))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return agents, origin
}

// publishLoopRelease publishes data as app/stable sequence 1, version 1.0,
// installed by a command that does nothing.
func publishLoopRelease(t *testing.T, c *cli, data []byte) {
	t.Helper()
	c.write("app.bin", data)
	c.ok("publish", "--origin", "origin", "--root", "root.json", "--key", "a.key", "--product", "app",
		"--channel", "stable", "--version", "1.0", "--installer", "command", "--command", "/bin/true {artifact}",
		"--chunk-min", "16384", "--chunk-avg", "65536", "--chunk-max", "262144", "app.bin")
}

// waitLoopInstalled waits until every agent has installed seq.
func waitLoopInstalled(t *testing.T, agents []*loopAgent, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for _, a := range agents {
		for {
			st, err := a.status("https")
			if err == nil && len(st.Subscriptions) == 1 && st.Subscriptions[0].InstalledSequence == seq {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not install sequence %d (last status %+v, %v)\nlog:\n%s", a.name, seq, st, err, tail(a.logBuf.String(), 40))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// startLoopAgentOf runs the agent binary bin with the configuration
// name.toml until the test ends.
func startLoopAgentOf(t *testing.T, c *cli, bin, name string, port int) *loopAgent {
	t.Helper()
	a := &loopAgent{name: name, port: port, logBuf: &testlog.Buffer{}, done: make(chan struct{})}
	a.cmd = exec.Command(bin, "agent", "--config", name+".toml", "--log-level", "debug")
	a.cmd.Dir = c.dir
	a.cmd.Env = filteredEnv()
	a.cmd.Stderr = a.logBuf
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.done:
		case <-time.After(10 * time.Second):
			a.cmd.Process.Kill()
			<-a.done
		}
		if t.Failed() {
			os.WriteFile(filepath.Join(os.TempDir(), "fleetcast-"+name+".log"), []byte(a.logBuf.String()), 0o644)
		}
	})
	return a
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
