package demo

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/agent/statusclient"
)

func subStatus(sub peerproto.SubscriptionStatus) statusclient.Result {
	return statusclient.Result{Status: &peerproto.Status{Subscriptions: []peerproto.SubscriptionStatus{sub}}}
}

// TestRowUpdate folds status answers for release 2 into a row.
func TestRowUpdate(t *testing.T) {
	start := time.Now().Add(-time.Second)
	tr := &peerproto.Transfer{Origin: 10, Peer: 20, ReusedLocal: 30, Resumed: 4, Duplicate: 5}
	progress := &peerproto.Progress{Sequence: 2, Phase: peerproto.PhaseFetching, TotalBytes: 200, DoneBytes: 50,
		OriginBytes: 1, PeerBytes: 2, ReusedBytes: 3}
	for _, tc := range []struct {
		name                 string
		res                  statusclient.Result
		phase                string
		pct                  int
		origin, peer, reused int64
		lastErr              string
		installed            bool
	}{
		{"no answer", statusclient.Result{Err: errors.New("timeout")}, "waiting", -1, 0, 0, 0, "timeout", false},
		{"no subscription", statusclient.Result{Status: &peerproto.Status{}}, "no subscription", -1, 0, 0, 0,
			"the agent reports no subscription", false},
		{"release 1", subStatus(peerproto.SubscriptionStatus{TrustedSequence: 1, InstalledSequence: 1}), "waiting", -1, 0, 0, 0, "", false},
		{"an error before the publish", subStatus(peerproto.SubscriptionStatus{TrustedSequence: 1, LastCheck: start.Add(-time.Second),
			LastError: "404"}), "waiting", -1, 0, 0, 0, "", false},
		{"an error after the publish", subStatus(peerproto.SubscriptionStatus{TrustedSequence: 1, LastCheck: start.Add(time.Millisecond),
			LastError: "origin down"}), "waiting", -1, 0, 0, 0, "origin down", false},
		{"trusted", subStatus(peerproto.SubscriptionStatus{TrustedSequence: 2}), "fetching", -1, 0, 0, 0, "", false},
		{"in progress", subStatus(peerproto.SubscriptionStatus{TrustedSequence: 2, Progress: progress}), "fetching", 25, 1, 2, 3, "", false},
		{"installed without its transfer", subStatus(peerproto.SubscriptionStatus{TrustedSequence: 2, InstalledSequence: 2,
			LastTransfer: tr, LastTransferSequence: 1}), "fetching", -1, 0, 0, 0, "", false},
		{"installed", subStatus(peerproto.SubscriptionStatus{TrustedSequence: 2, InstalledSequence: 2,
			LastTransfer: tr, LastTransferSequence: 2}), "installed", 100, 10, 20, 39, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := row{name: "agent1", phase: "waiting", pct: -1}
			r.update(tc.res, 2, start)
			if r.phase != tc.phase || r.pct != tc.pct || r.origin != tc.origin || r.peer != tc.peer || r.reused != tc.reused ||
				r.lastErr != tc.lastErr || (r.installed != 0) != tc.installed {
				t.Errorf("got phase %q, %d%%, origin %d, peer %d, reused %d, error %q, installed after %v; "+
					"want %q, %d%%, %d, %d, %d, %q, installed %v", r.phase, r.pct, r.origin, r.peer, r.reused, r.lastErr, r.installed,
					tc.phase, tc.pct, tc.origin, tc.peer, tc.reused, tc.lastErr, tc.installed)
			}
		})
	}
}

func TestPercent(t *testing.T) {
	for _, tc := range []struct {
		done, total int64
		want        int
	}{{0, 0, -1}, {1, -1, -1}, {0, 10, 0}, {5, 10, 50}, {10, 10, 100}, {11, 10, 100}, {-1, 10, 0}} {
		if got := percent(tc.done, tc.total); got != tc.want {
			t.Errorf("percent(%d, %d) = %d, want %d", tc.done, tc.total, got, tc.want)
		}
	}
}

// TestPending names the agents without the release, with their last error.
func TestPending(t *testing.T) {
	rows := []row{{name: "agent1", installed: time.Second}, {name: "agent2", phase: "fetching"},
		{name: "agent3", phase: "waiting", lastErr: "origin down"}}
	if allInstalled(rows) {
		t.Error("allInstalled with two agents waiting")
	}
	want := "agent2 fetching; agent3 waiting, last error: origin down"
	if got := pending(rows); got != want {
		t.Errorf("pending = %q, want %q", got, want)
	}
	if !allInstalled(rows[:1]) {
		t.Error("not allInstalled with the one agent installed")
	}
}

// TestViewLog checks the view for a pipe: a line per change of phase and
// no escape codes.
func TestViewLog(t *testing.T) {
	var out strings.Builder
	v := &view{w: &out, start: time.Now(), last: make([]string, 2)}
	rows := []row{{name: "agent1", phase: "waiting", pct: -1}, {name: "agent2", phase: "waiting", pct: -1}}
	v.render(rows, 0)
	v.lastProgress = time.Now().Add(time.Hour) // no progress line due in what follows
	rows[0].phase = "fetching"
	v.render(rows, 1<<20)
	v.render(rows, 2<<20)
	rows[0].phase, rows[0].installed, rows[0].peer = "installed", 1500*time.Millisecond, 3<<20
	v.render(rows, 3<<20)
	got := out.String()
	for _, want := range []string{"  agent1: waiting\n  agent2: waiting\n  [", "] 0/2 installed; origin sent 0 B, peers moved 0 B\n",
		"  agent1: fetching\n", "  agent1: installed after 1.5s (from peers 3.0 MiB, from origin 0 B, reused 0 B)\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "agent1: fetching"); n != 1 {
		t.Errorf("%d fetching lines for agent1, want 1 (one per change):\n%s", n, got)
	}
	if n := strings.Count(got, "installed; origin sent"); n != 1 {
		t.Errorf("%d progress lines, want 1 (the first; the next is not due):\n%s", n, got)
	}
	if strings.Contains(got, "\x1b[") {
		t.Errorf("escape codes in the output to a pipe:\n%q", got)
	}
}

// TestViewTerminal checks the view for a terminal: the fleet line and a
// line per agent, redrawn in place.
func TestViewTerminal(t *testing.T) {
	var out strings.Builder
	v := &view{w: &out, tty: true, start: time.Now(), last: make([]string, 2)}
	rows := []row{{name: "agent1", phase: "fetching", pct: 50, peer: 1 << 20}, {name: "agent2", phase: "waiting", pct: -1}}
	v.render(rows, 0)
	first := out.String()
	if strings.Contains(first, "\x1b[3A") || strings.Count(first, "\r\x1b[2K") != 3 {
		t.Errorf("first drawing: %q; want 3 lines and no cursor up", first)
	}
	for _, want := range []string{"agent1  fetching   [##########..........]  50%  peers   1.0 MiB", "agent2  waiting    [....................]   ?%"} {
		if !strings.Contains(first, want) {
			t.Errorf("first drawing lacks %q:\n%s", want, first)
		}
	}
	v.render(rows, 0)
	if again := strings.TrimPrefix(out.String(), first); !strings.HasPrefix(again, "\x1b[3A\r\x1b[2K") {
		t.Errorf("second drawing: %q; want it to start 3 lines up", again)
	}
}
