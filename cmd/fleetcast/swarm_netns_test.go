//go:build linux

package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/internal/netlab"
	"github.com/fleetcast/fleetcast/internal/origintest"
)

// TestSwarmNetns runs real agents on hosts of a namespaced LAN (package
// netlab): six agents, a hostile peer and an origin whose upload is shaped
// to 200 Mbit/s. Four agents of fleet A must install a 32 MiB release
// mostly from each other, ban the hostile peer that serves corrupt chunks,
// never see the agent of fleet B, and install the next release from agent 1
// alone while the origin is down.
//
// The origin is served by this test process from a socket made inside the
// origin host's namespace (netlab.Host.Listen), rather than by a re-executed
// test binary: that would run TestMain, which builds fleetcast again.

const (
	swarmFleetA       = 4
	swarmArtifactSize = 32 << 20
	swarmOriginRate   = 200e6 // bits/s, the origin's upload
	swarmPort         = "7331"
	// swarmOriginRatio bounds origin egress in phase 1, in artifact sizes.
	swarmOriginRatio = 1.2
)

var swarmChunkFlags = []string{"--chunk-min", "65536", "--chunk-avg", "262144", "--chunk-max", "1048576"}

// swarm is the lab and what runs in it.
type swarm struct {
	t       *testing.T
	c       *cli
	lab     *netlab.Lab
	origin  *netlab.Host
	srv     *origintest.Origin // served on the origin host
	target  string             // the install target directory every agent sees (its own copy bind-mounted)
	agents  []*swarmAgent
	hostile *swarmHostile
}

// swarmAgent is one agent host: its directory, config, log and process.
type swarmAgent struct {
	name   string
	host   *netlab.Host
	dir    string // data, target, agent.toml, agent.log
	secret string // fleet secret file; "" = open fleet
	cmd    *exec.Cmd
	done   chan error
}

// swarmStatus is the part of GET /v1/status the test reads.
type swarmStatus struct {
	AgentID     string `json:"agent_id"`
	FleetID     string `json:"fleet_id"`
	OriginBytes int64  `json:"origin_bytes"`
	Peers       []struct {
		Addr   string `json:"addr"`
		ID     string `json:"id"`
		Source string `json:"source"`
		Banned bool   `json:"banned"`
	} `json:"peers"`
	Subscriptions []struct {
		InstalledSequence    uint64         `json:"installed_sequence"`
		LastOutcome          string         `json:"last_outcome"`
		LastError            string         `json:"last_error"`
		LastTransferSequence uint64         `json:"last_transfer_sequence"`
		LastTransfer         *swarmTransfer `json:"last_transfer"`
	} `json:"subscriptions"`
}

// swarmTransfer is where the bytes of one release came from.
type swarmTransfer struct {
	OriginBytes   int64   `json:"origin_bytes"`
	OriginChunks  int64   `json:"origin_chunks"`
	PeerBytes     int64   `json:"peer_bytes"`
	PeerChunks    int64   `json:"peer_chunks"`
	ArtifactBytes int64   `json:"artifact_bytes"`
	Seconds       float64 `json:"assemble_seconds"`
}

func TestSwarmNetns(t *testing.T) {
	swarmRequire(t)
	s := newSwarm(t)

	// Phase 1: the hostile peer and four agents of fleet A run, as services
	// do, and find each other over mDNS; then release 1 is published.
	secretA, secretB := s.secret("fleetA.secret"), s.secret("fleetB.secret")
	s.startHostile(secretA)
	for i := range swarmFleetA {
		s.addAgent(fmt.Sprintf("a%d", i+1), secretA)
	}
	for _, a := range s.agents {
		s.start(a)
	}
	s.waitPeers(s.agents, 30*time.Second)
	tx0 := s.originTx()
	start := time.Now()
	rel1 := s.publish(1)
	s.waitInstalled(s.agents, 1, 120*time.Second)
	elapsed := time.Since(start)
	egress := s.originTx() - tx0
	ratio := float64(egress) / swarmArtifactSize
	t.Logf("phase 1: %d agents installed %d MiB in %s; origin egress %d bytes = %.2f x the artifact",
		swarmFleetA, swarmArtifactSize>>20, elapsed.Round(time.Millisecond), egress, ratio)
	statuses := s.checkPhase1(rel1, ratio)

	// Phase 2: fleet B installs from the origin alone and stays apart.
	b := s.addAgent("b1", secretB)
	s.start(b)
	s.waitInstalled([]*swarmAgent{b}, 1, 60*time.Second)
	s.checkFleetsApart(b, statuses)
	s.stop(b)

	// Phase 3: the origin goes down once agent 1 has release 2; agents 2..4
	// come back and must get it from peers.
	for _, a := range s.agents[1:swarmFleetA] {
		s.stop(a)
	}
	rel2 := s.publish(2)
	s.waitInstalled(s.agents[:1], 2, 60*time.Second)
	s.srv.Close()
	if err := s.origin.SetLinkUp(false); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	for _, a := range s.agents[1:swarmFleetA] {
		s.start(a)
	}
	s.waitInstalled(s.agents[1:swarmFleetA], 2, 90*time.Second)
	t.Logf("phase 3: agents 2..%d installed release 2 from peers in %s with the origin down",
		swarmFleetA, time.Since(start).Round(time.Millisecond))
	for _, a := range s.agents[1:swarmFleetA] {
		s.wantTarget(a, rel2)
		st := s.status(a)
		if tr := st.transfer(2); tr == nil || tr.OriginBytes != 0 || tr.PeerBytes == 0 {
			t.Errorf("%s: release 2 transfer %+v; want every byte from peers, none from the origin", a.name, tr)
		}
	}
}

// waitPeers waits until every agent follows every other one.
func (s *swarm) waitPeers(agents []*swarmAgent, timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for _, a := range agents {
		for {
			st := s.status(a)
			n := 0
			for _, p := range st.Peers {
				for _, o := range agents {
					if o != a && p.ID != "" && strings.HasPrefix(p.Addr, o.host.IP()+":") {
						n++
					}
				}
			}
			if n == len(agents)-1 {
				break
			}
			if time.Now().After(deadline) {
				s.dumpLogs()
				s.t.Fatalf("%s follows %d of the %d other agents after %s: %+v", a.name, n, len(agents)-1, timeout, st.Peers)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// swarmRequire skips without network namespaces, or fails when
// FLEETCAST_REQUIRE_NETNS=1 (CI) requires them.
func swarmRequire(t *testing.T) {
	t.Helper()
	err := netlab.Available()
	if err == nil {
		return
	}
	if os.Getenv("FLEETCAST_REQUIRE_NETNS") == "1" {
		t.Fatalf("%v, and FLEETCAST_REQUIRE_NETNS=1 requires network namespaces", err)
	}
	t.Skipf("%v (run as root, or set FLEETCAST_REQUIRE_NETNS=1 to make this a failure)", err)
}

// newSwarm makes keys, a root, the lab and the origin host serving the
// origin directory on port 8080.
func newSwarm(t *testing.T) *swarm {
	c := newCLI(t)
	setupRoot(t, c, []string{"a"}, "1")
	c.ok("root", "publish", "--origin", "origin", "root.json")
	s := &swarm{t: t, c: c, target: c.path("target")}
	if err := os.MkdirAll(s.target, 0o755); err != nil {
		t.Fatal(err)
	}
	lab, err := netlab.New("fcswarm")
	if err != nil {
		t.Fatal(err)
	}
	s.lab = lab
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
	})
	t.Cleanup(s.dumpLogs) // runs before the lab closes
	if s.origin, err = lab.AddHost("origin", &netlab.Shape{EgressBits: swarmOriginRate}); err != nil {
		t.Fatal(err)
	}
	ln, err := s.origin.Listen("tcp", s.origin.IP()+":8080")
	if err != nil {
		t.Fatal(err)
	}
	s.srv = origintest.New(t, c.path("origin"), origintest.Listener(ln))
	return s
}

// secret makes a fleet secret file with "fleetcast fleet-secret".
func (s *swarm) secret(name string) string {
	s.c.ok("fleet-secret", name)
	return s.c.path(name)
}

// publish publishes 32 MiB of random bytes as sequence seq and returns them.
func (s *swarm) publish(seq int) []byte {
	s.t.Helper()
	data := make([]byte, swarmArtifactSize)
	rand.Read(data)
	name := fmt.Sprintf("app-%d.bin", seq)
	s.c.write(name, data)
	args := []string{"publish", "--origin", "origin", "--root", "root.json", "--key", "a.key",
		"--product", e2eProduct, "--channel", e2eChannel, "--version", fmt.Sprintf("1.%d", seq),
		"--installer", "file", "--target", filepath.Join(s.target, "app"), "--mode", "0755"}
	s.c.ok(append(append(args, swarmChunkFlags...), name)...)
	return data
}

func (s *swarm) originTx() int64 {
	s.t.Helper()
	n, err := s.origin.TxBytes()
	if err != nil {
		s.t.Fatal(err)
	}
	return n
}

// addAgent adds a host and writes its agent's configuration.
func (s *swarm) addAgent(name, secret string) *swarmAgent {
	s.t.Helper()
	h, err := s.lab.AddHost(name, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	a := &swarmAgent{name: name, host: h, dir: s.c.path(name), secret: secret}
	if err := os.MkdirAll(filepath.Join(a.dir, "target"), 0o755); err != nil {
		s.t.Fatal(err)
	}
	cfg := fmt.Sprintf(`data_dir = %q
origin = "http://%s:8080/"
root = %q
listen = "%s:%s"
poll_interval = "2s"
allowed_installers = ["file"]
allowed_targets = [%q]
mdns = true
browse_interval = "1s"
peer_expiry = "30s"
fleet_secret_file = %q
peer_connections = 8
peer_requests_per_peer = 2
peer_timeout = "10s"
origin_grace = "2s"
ban_duration = "10m"
upload_rate = 0
download_rate = 0
max_uploads = 16

[[subscription]]
product = %q
channel = %q
`, filepath.Join(a.dir, "data"), s.origin.IP(), s.c.path("root.json"), h.IP(), swarmPort,
		s.target+string(filepath.Separator), secret, e2eProduct, e2eChannel)
	if err := os.WriteFile(a.config(), []byte(cfg), 0o644); err != nil {
		s.t.Fatal(err)
	}
	s.agents = append(s.agents, a)
	return a
}

func (a *swarmAgent) config() string  { return filepath.Join(a.dir, "agent.toml") }
func (a *swarmAgent) logPath() string { return filepath.Join(a.dir, "agent.log") }

// start runs the agent in its namespace, in a mount namespace of its own in
// which its target directory is bind-mounted over the shared target path.
func (s *swarm) start(a *swarmAgent) {
	s.t.Helper()
	log, err := os.OpenFile(a.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	defer log.Close()
	const script = `mount --bind "$1" "$2" && exec "$3" agent --config "$4" --log-format json --log-level debug`
	a.cmd = a.host.Command(s.t.Context(), "unshare", "-m", "--propagation", "private", "sh", "-c", script,
		"sh", filepath.Join(a.dir, "target"), s.target, fleetcastBin, a.config())
	a.cmd.Env = filteredEnv()
	a.cmd.Stdout, a.cmd.Stderr = log, log
	if err := a.cmd.Start(); err != nil {
		s.t.Fatalf("start agent %s: %v", a.name, err)
	}
	done := make(chan error, 1)
	a.done = done
	go func() { done <- a.cmd.Wait() }()
}

// stop sends SIGTERM and waits for the agent to exit.
func (s *swarm) stop(a *swarmAgent) {
	s.t.Helper()
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-a.done:
		if err != nil {
			s.t.Errorf("agent %s exited with %v after SIGTERM, want 0", a.name, err)
		}
	case <-time.After(10 * time.Second):
		syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
		<-a.done
		s.t.Errorf("agent %s still running 10s after SIGTERM", a.name)
	}
	a.done = nil
}

var swarmClient = &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
	TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the status API's fleet certificate is self-signed
}}

// status fetches the agent's status; a zero status when it does not answer.
func (s *swarm) status(a *swarmAgent) swarmStatus {
	var st swarmStatus
	scheme := "http"
	if a.secret != "" {
		scheme = "https"
	}
	resp, err := swarmClient.Get(scheme + "://" + net.JoinHostPort(a.host.IP(), swarmPort) + "/v1/status")
	if err != nil {
		return st
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&st)
	return st
}

func (st *swarmStatus) installed() uint64 {
	if len(st.Subscriptions) != 1 {
		return 0
	}
	return st.Subscriptions[0].InstalledSequence
}

// transfer is the last transfer's figures when it was of sequence seq.
func (st *swarmStatus) transfer(seq uint64) *swarmTransfer {
	if len(st.Subscriptions) != 1 || st.Subscriptions[0].LastTransferSequence != seq {
		return nil
	}
	return st.Subscriptions[0].LastTransfer
}

// waitInstalled polls the agents' status until each has installed seq.
func (s *swarm) waitInstalled(agents []*swarmAgent, seq uint64, timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		pending := []string{}
		for _, a := range agents {
			select {
			case err := <-a.done:
				s.t.Fatalf("agent %s exited early: %v", a.name, err)
			default:
			}
			if st := s.status(a); st.installed() < seq {
				last := ""
				if len(st.Subscriptions) == 1 {
					last = st.Subscriptions[0].LastOutcome + " " + st.Subscriptions[0].LastError
				}
				pending = append(pending, fmt.Sprintf("%s (installed %d, last %q)", a.name, st.installed(), last))
			}
		}
		if len(pending) == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("sequence %d not installed within %s by %s", seq, timeout, strings.Join(pending, ", "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// wantTarget checks the agent's own copy of the install target.
func (s *swarm) wantTarget(a *swarmAgent, want []byte) {
	s.t.Helper()
	got, err := os.ReadFile(filepath.Join(a.dir, "target", "app"))
	if err != nil {
		s.t.Errorf("%s: target: %v", a.name, err)
		return
	}
	if !bytes.Equal(got, want) {
		s.t.Errorf("%s: target is %d bytes (sha256 %x), want the %d-byte release (sha256 %x)",
			a.name, len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
	}
}

// checkPhase1 checks the installed files, origin egress, peer bytes and the
// hostile peer's ban, and returns the fleet A agents' statuses.
func (s *swarm) checkPhase1(rel []byte, ratio float64) []swarmStatus {
	t := s.t
	var peerBytes int64
	var statuses []swarmStatus
	for _, a := range s.agents[:swarmFleetA] {
		s.wantTarget(a, rel)
		st := s.status(a)
		statuses = append(statuses, st)
		if tr := st.transfer(1); tr != nil {
			t.Logf("%s: %d bytes from the origin (%d chunks), %d from peers (%d chunks), assembled in %.2fs",
				a.name, tr.OriginBytes, tr.OriginChunks, tr.PeerBytes, tr.PeerChunks, tr.Seconds)
			peerBytes += tr.PeerBytes
		}
	}
	if ratio > swarmOriginRatio {
		t.Errorf("origin egress %.2f x the artifact, want at most %.1f", ratio, swarmOriginRatio)
	}
	if peerBytes == 0 {
		t.Error("no agent fetched any chunk bytes from a peer")
	}
	s.checkHostileBanned(statuses)
	return statuses
}

// checkHostileBanned wants the hostile peer banned by at least one agent it
// served a bad chunk to, and reports how often it was asked.
func (s *swarm) checkHostileBanned(statuses []swarmStatus) {
	t := s.t
	hits := s.hostile.hits()
	banned := 0
	for i, a := range s.agents[:swarmFleetA] {
		isBanned := false
		for _, p := range statuses[i].Peers {
			if p.ID == s.hostile.id || p.Addr == s.hostile.addr {
				isBanned = p.Banned
			}
		}
		if isBanned {
			banned++
		}
		t.Logf("%s: served %d bad chunks by the hostile peer, banned it: %v", a.name, hits[a.host.IP()], isBanned)
	}
	total := 0
	for _, n := range hits {
		total += n
	}
	switch {
	case total == 0:
		t.Error("no agent asked the hostile peer for a chunk, although it advertised every chunk before the agents started")
	case banned == 0:
		t.Errorf("the hostile peer served %d bad chunks and no agent banned it", total)
	}
}

// checkFleetsApart: fleet B's agent got nothing from peers, and neither
// fleet lists the other's agents.
func (s *swarm) checkFleetsApart(b *swarmAgent, fleetA []swarmStatus) {
	t := s.t
	st := s.status(b)
	if tr := st.transfer(1); tr == nil || tr.PeerBytes != 0 {
		t.Errorf("fleet B agent: transfer %+v, want all from the origin", tr)
	}
	ids := map[string]string{}
	for i, a := range s.agents[:swarmFleetA] {
		ids[fleetA[i].AgentID] = a.name
		ids[net.JoinHostPort(a.host.IP(), swarmPort)] = a.name
	}
	for _, p := range st.Peers {
		if name, ok := ids[p.ID]; ok && p.ID != "" {
			t.Errorf("fleet B agent lists fleet A agent %s (%s)", name, p.Addr)
		} else if name, ok := ids[p.Addr]; ok {
			t.Errorf("fleet B agent lists fleet A agent %s (%s)", name, p.Addr)
		}
	}
	bAddr := net.JoinHostPort(b.host.IP(), swarmPort)
	for _, a := range s.agents[:swarmFleetA] {
		for _, p := range s.status(a).Peers {
			if (st.AgentID != "" && p.ID == st.AgentID) || p.Addr == bAddr {
				t.Errorf("fleet A agent %s lists the fleet B agent", a.name)
			}
		}
	}
}

// dumpLogs prints, when the test failed, the end of every log: its last
// lines above debug level, which tell the story, and its very last lines.
func (s *swarm) dumpLogs() {
	if !s.t.Failed() {
		return
	}
	for _, a := range s.agents {
		s.t.Logf("--- %s's log (%s), last info and error lines:\n%s\n--- last lines:\n%s", a.name, a.logPath(),
			swarmTail(a.logPath(), 25, func(l string) bool { return !strings.Contains(l, `"level":"DEBUG"`) }),
			swarmTail(a.logPath(), 5, nil))
	}
	if s.hostile != nil {
		s.t.Logf("--- the hostile peer's log:\n%s", swarmTail(s.hostile.log, 15, nil))
	}
}

// swarmTail returns the last n lines of a file that keep accepts (nil: all).
func swarmTail(path string, n int, keep func(string) bool) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if keep == nil || keep(l) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// swarmHostile is the hostile peer's host and log.
type swarmHostile struct {
	host *netlab.Host
	id   string // its agent id, from its log
	addr string // ip:port
	log  string
}

var (
	hostileOnce sync.Once
	hostileBin  string
	hostileErr  error
)

// buildHostile builds internal/cmd/hostilepeer once per test binary.
func buildHostile(t *testing.T) string {
	hostileOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fleetcast-hostile-")
		if err != nil {
			hostileErr = err
			return
		}
		hostileBin = filepath.Join(dir, "hostilepeer")
		out, err := exec.Command("go", "build", "-o", hostileBin, "github.com/fleetcast/fleetcast/internal/cmd/hostilepeer").CombinedOutput()
		if err != nil {
			hostileErr = fmt.Errorf("build hostilepeer: %v\n%s", err, out)
		}
	})
	if hostileErr != nil {
		t.Fatal(hostileErr)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(hostileBin)) })
	return hostileBin
}

// startHostile starts the hostile peer (fleet secret, corrupt mode) and
// waits until it serves and advertises.
func (s *swarm) startHostile(secret string) {
	t := s.t
	bin := buildHostile(t)
	h, err := s.lab.AddHost("evil", nil)
	if err != nil {
		t.Fatal(err)
	}
	s.hostile = &swarmHostile{host: h, addr: net.JoinHostPort(h.IP(), swarmPort), log: s.c.path("hostile.log")}
	log, err := os.Create(s.hostile.log)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := h.Command(t.Context(), bin, "-origin", s.c.path("origin"), "-product", e2eProduct, "-channel", e2eChannel,
		"-listen", s.hostile.addr, "-fleet-secret", secret, "-mode", "corrupt")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-done
	})
	deadline := time.Now().Add(15 * time.Second)
	for s.hostile.id == "" {
		select {
		case <-done:
			t.Fatalf("hostile peer exited: %v\n%s", waitErr, swarmTail(s.hostile.log, 20, nil))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("hostile peer not advertising within 15s\n%s", swarmTail(s.hostile.log, 20, nil))
		}
		s.hostile.id = logField(s.hostile.log, "advertising over mDNS", "agent")
	}
}

// hits counts the bad chunks the hostile peer served, by client IP.
func (h *swarmHostile) hits() map[string]int {
	f, err := os.Open(h.log)
	if err != nil {
		return nil
	}
	defer f.Close()
	hits := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), `msg="served bad chunk"`) {
			continue
		}
		if host, _, err := net.SplitHostPort(textField(sc.Text(), "remote")); err == nil {
			hits[host]++
		}
	}
	return hits
}

// logField returns key's value in the first line of a text log with msg.
func logField(path, msg, key string) string {
	b, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `msg="`+msg+`"`) {
			return textField(line, key)
		}
	}
	return ""
}

// textField returns the unquoted value of key=value in a slog text line.
func textField(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}
