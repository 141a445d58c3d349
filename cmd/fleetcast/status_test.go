package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/internal/testlog"
)

// TestStatusAndPeersThroughRealAgents runs fleetcast status and fleetcast
// peers against three real agents on loopback that installed a release,
// then against the fleet with one agent stopped.
func TestStatusAndPeersThroughRealAgents(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM on Windows")
	}
	c := newCLI(t)
	agents, _ := startLoopFleet(t, c)
	publishLoopRelease(t, c, randomBytes(78, 1<<20))
	waitLoopInstalled(t, agents, 1)
	ids := map[string]string{} // addr -> agent id
	for _, a := range agents {
		st, err := a.status("https")
		if err != nil {
			t.Fatal(err)
		}
		ids[fmt.Sprintf("127.0.0.1:%d", a.port)] = st.AgentID
	}
	addr0 := fmt.Sprintf("127.0.0.1:%d", agents[0].port)

	t.Run("status --json", func(t *testing.T) {
		var st peerproto.Status
		out := c.ok("status", "--json", "--config", "agent0.toml")
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		s := st.Subscriptions
		if st.AgentID != ids[addr0] || len(s) != 1 || s[0].InstalledSequence != 1 || s[0].InstalledVersion != "1.0" ||
			s[0].LastTransfer == nil || len(st.Peers) != 2 || st.FleetID == "open" {
			t.Errorf("status --json of %s (id %s):\n%s", addr0, ids[addr0], out)
		}
	})
	t.Run("status", func(t *testing.T) {
		out := c.ok("status", "--config", "agent0.toml")
		t.Logf("fleetcast status:\n%s", out)
		want := []string{"agent " + ids[addr0], "app/stable", "installed:     1.0 (sequence 1)", "last transfer: sequence 1", "peers (2):"}
		for a := range ids {
			if a != addr0 {
				want = append(want, a)
			}
		}
		wantAll(t, out, want...)
	})
	t.Run("status --addr probes https", func(t *testing.T) {
		wantAll(t, c.ok("status", "--addr", addr0), "agent "+ids[addr0], "installed:     1.0 (sequence 1)")
	})
	t.Run("peers", func(t *testing.T) {
		want := []string{"app/stable: 3 of 3 agents on sequence 1 (1.0); 0 updating"}
		for a, id := range ids {
			want = append(want, a, id)
		}
		out := wantAll(t, c.ok("peers", "--config", "agent0.toml"), want...)
		t.Logf("fleetcast peers:\n%s", out)
		if strings.Count(out, "1.0 (seq 1)") != 3 || strings.Count(out, "idle") != 3 {
			t.Errorf("peers: want 3 rows with 1.0 (seq 1), idle:\n%s", out)
		}
	})
	t.Run("peers --json", func(t *testing.T) {
		fleet := peersJSON(t, c, "agent1.toml")
		if len(fleet.Agents) != 3 || len(fleet.Summary) != 1 || fleet.Summary[0].OnSequence != 3 || fleet.Summary[0].Sequence != 1 {
			t.Fatalf("peers --json: %+v", fleet)
		}
		for _, a := range fleet.Agents {
			if a.Error != "" || a.Status == nil || a.Status.AgentID != ids[a.Addr] {
				t.Errorf("peers --json: agent %s: %+v, want id %s", a.Addr, a, ids[a.Addr])
			}
		}
	})
	t.Run("status --watch", func(t *testing.T) { watchTwice(t, c) })

	stopped := fmt.Sprintf("127.0.0.1:%d", agents[2].port)
	agents[2].cmd.Process.Signal(syscall.SIGTERM)
	<-agents[2].done
	t.Run("peers with one agent down", func(t *testing.T) {
		fleet := peersJSON(t, c, "agent0.toml")
		for _, a := range fleet.Agents {
			if a.Addr == stopped && (a.Status != nil || !strings.Contains(a.Error, "no agent answers at "+stopped)) {
				t.Errorf("stopped agent: %+v, want an error", a)
			}
		}
		out := c.ok("peers", "--config", "agent0.toml", "--timeout", "1s")
		t.Logf("fleetcast peers, one agent down:\n%s", out)
		wantAll(t, out, stopped, "unreachable: no agent answers at "+stopped, "2 of 2 agents on sequence 1 (1.0); 0 updating", "; 1 unreachable")
	})
	t.Run("status of a stopped agent", func(t *testing.T) {
		c.fails("no agent answers at "+stopped+": connection refused; is `fleetcast agent` running?", "status", "--config", "agent2.toml")
	})
}

// wantAll fails t unless out has every string of want and no escape
// sequence (it is not a terminal); it returns out.
func wantAll(t *testing.T, out string, want ...string) string {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if strings.ContainsAny(out, "\x1b\r") {
		t.Errorf("output to a pipe has escape codes:\n%q", out)
	}
	return out
}

// peersOutput is fleetcast peers --json.
type peersOutput struct {
	Agents []struct {
		Addr   string            `json:"addr"`
		Status *peerproto.Status `json:"status"`
		Error  string            `json:"error"`
	} `json:"agents"`
	Summary []struct {
		Sequence   uint64 `json:"sequence"`
		OnSequence int    `json:"on_sequence"`
	} `json:"summary"`
}

func peersJSON(t *testing.T, c *cli, config string) peersOutput {
	t.Helper()
	var p peersOutput
	out := c.ok("peers", "--json", "--timeout", "1s", "--config", config)
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("peers --json: %v\n%s", err, out)
	}
	return p
}

// watchTwice runs status --watch until it printed two samples, then stops
// it with SIGINT: it must exit 0 having printed plain text.
func watchTwice(t *testing.T, c *cli) {
	cmd := exec.Command(fleetcastBin, "status", "--watch", "--interval", "100ms", "--config", "agent0.toml")
	cmd.Dir = c.dir
	out := &testlog.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(out.String(), "app/stable\n") < 2 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("status --watch printed no second sample in 10s:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Errorf("status --watch after SIGINT: %v, want exit 0\n%s", err, out)
	}
	wantAll(t, out.String(), "installed:     1.0 (sequence 1)")
}

func TestProgressRendering(t *testing.T) {
	const MiB = 1 << 20
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	fetching := &peerproto.Progress{Sequence: 7, Version: "1.2.0", Phase: "fetching", Started: now.Add(-4 * time.Second),
		TotalBytes: 32 * MiB, DoneBytes: 12.5 * MiB, PeerBytes: 8.875 * MiB, OriginBytes: 2.5 * MiB, ReusedBytes: 1.125 * MiB}
	done := *fetching
	done.Phase, done.DoneBytes = "installing", done.TotalBytes
	justStarted := *fetching
	justStarted.Started, justStarted.DoneBytes, justStarted.PeerBytes, justStarted.OriginBytes, justStarted.ReusedBytes = now, 0, 0, 0, 0
	tests := []struct {
		name string
		p    *peerproto.Progress
		rate float64 // measured by --watch; 0: from Started
		want string
	}{
		{"rate from start", fetching, 0,
			"12.5 MiB of 32.0 MiB (39%), 2.8 MiB/s, eta 7s, from peers 71%, origin 20%, reused 9%"},
		{"rate measured", fetching, 8.1 * MiB,
			"12.5 MiB of 32.0 MiB (39%), 8.1 MiB/s, eta 2s, from peers 71%, origin 20%, reused 9%"},
		{"all verified", &done, 0,
			"32.0 MiB of 32.0 MiB (100%), 2.8 MiB/s, all verified, from peers 71%, origin 20%, reused 9%"},
		{"just started", &justStarted, 0,
			"0 B of 32.0 MiB (0%), 0 B/s, eta unknown, from peers 0%, origin 0%, reused 0%"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := progressText(tt.p, now, tt.rate); got != tt.want {
				t.Errorf("progressText:\n got %s\nwant %s", got, tt.want)
			}
			st := peerproto.Status{AgentID: "a1", Subscriptions: []peerproto.SubscriptionStatus{{Product: "app", Channel: "stable", Progress: tt.p}}}
			plain := formatStatus(st, now, map[string]float64{"app/stable": tt.rate}, false)
			wantAll(t, plain, "  progress: "+tt.want, "updating:      to 1.2.0 (sequence 7)")
			tty := formatStatus(st, now, map[string]float64{"app/stable": tt.rate}, true)
			if pct := fmt.Sprintf("%d%% |", percent(tt.p.DoneBytes, tt.p.TotalBytes)); !strings.Contains(tty, pct) || !strings.Contains(tty, tt.want) {
				t.Errorf("terminal output lacks the bar (%q) or %q:\n%s", pct, tt.want, tty)
			}
		})
	}
}

func TestPeerNote(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		p    peerproto.PeerStatus
		want string
	}{
		{"healthy", peerproto.PeerStatus{Addr: "198.18.0.2:7331"}, ""},
		{"refused at the handshake", peerproto.PeerStatus{Error: "not this fleet's certificate"}, "last error: not this fleet's certificate"},
		{"banned", peerproto.PeerStatus{Banned: true, BannedUntil: now.Add(time.Minute), BanReason: "bad chunk", Error: "x"},
			"banned for 1m0s: bad chunk; last error: x"},
	}
	for _, tc := range tests {
		if got := peerNote(tc.p, now); got != tc.want {
			t.Errorf("%s: peerNote = %q, want %q", tc.name, got, tc.want)
		}
	}
}
