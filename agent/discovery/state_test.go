package discovery

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRememberedAcrossNew(t *testing.T) {
	c := newClock()
	cfg := testConfig(c)
	cfg.StateFile = filepath.Join(t.TempDir(), "peers.json")
	cfg.Static = []string{"10.0.0.9:7000"}
	d := mustNew(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	d.seenMDNS("10.0.0.2:7331", info(idB, fleetX, 7331))
	d.seenMDNS("10.0.0.3:7331", info(idC, fleetY, 7331)) // other fleet: not remembered
	d.Seen("10.0.0.9:7000", idC, fleetX)                 // static: not remembered
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v; want nil after cancel", err)
	}

	c.Add(time.Hour)
	d2 := mustNew(t, cfg)
	peers := d2.Peers()
	if got, want := addrs(peers), "10.0.0.2:7331 10.0.0.9:7000"; got != want {
		t.Fatalf("after reload Peers = %s; want %s", got, want)
	}
	p := peers[0]
	if p.ID != idB || p.FleetID != fleetX || p.Source != SourceRemembered || !p.LastSeen.Equal(c.Now()) {
		t.Fatalf("remembered peer = %+v; want id, fleet and LastSeen = load time", p)
	}
	c.Add(cfg.Expiry)
	if got := addrs(d2.Peers()); got != "10.0.0.9:7000" {
		t.Fatalf("Peers = %s; want the remembered peer expired after one Expiry", got)
	}
}

func TestSaveThrottled(t *testing.T) {
	c := newClock()
	cfg := testConfig(c)
	cfg.StateFile = filepath.Join(t.TempDir(), "peers.json")
	d := mustNew(t, cfg)
	d.Seen("10.0.0.2:7331", idB, fleetX)
	d.maybeSave(false)
	first, err := os.ReadFile(cfg.StateFile)
	if err != nil {
		t.Fatal(err)
	}
	d.Seen("10.0.0.3:7331", idC, fleetX)
	d.maybeSave(false)
	if again, _ := os.ReadFile(cfg.StateFile); string(again) != string(first) {
		t.Fatal("state file rewritten within minSaveInterval")
	}
	c.Add(minSaveInterval)
	d.maybeSave(false)
	if again, _ := os.ReadFile(cfg.StateFile); !strings.Contains(string(again), "10.0.0.3:7331") {
		t.Fatalf("state file not updated after minSaveInterval:\n%s", again)
	}
	st, _ := os.Stat(cfg.StateFile)
	c.Add(minSaveInterval)
	d.Seen("10.0.0.3:7331", idC, fleetX) // LastSeen only
	d.maybeSave(false)
	if st2, _ := os.Stat(cfg.StateFile); !os.SameFile(st, st2) {
		t.Fatal("state file rewritten although only LastSeen changed")
	}
}

func TestBadStateFile(t *testing.T) {
	big := `{"version":1,"peers":[` + strings.Repeat(`{"addr":"10.0.0.2:7331"},`, maxStateSize/20) + `{"addr":"10.0.0.2:7331"}]}`
	tests := []struct {
		name, content, reason string
	}{
		{"not json", "peers: all of them", "invalid character"},
		{"oversized", big, "larger than 262144 bytes"},
		{"wrong version", `{"version":9,"peers":[]}`, "version 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			cfg := testConfig(c)
			cfg.StateFile = filepath.Join(t.TempDir(), "peers.json")
			cfg.Static = []string{"10.0.0.9:7000"}
			if err := os.WriteFile(cfg.StateFile, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			log, buf := logBuffer()
			d, err := New(cfg, self, log)
			if err != nil {
				t.Fatalf("New = %v; a bad state file must not be fatal", err)
			}
			out := buf.String()
			if !strings.Contains(out, "level=WARN") || !strings.Contains(out, tt.reason) || !strings.Contains(out, cfg.StateFile) {
				t.Fatalf("log = %q; want a warning naming the file and %q", out, tt.reason)
			}
			if got := addrs(d.Peers()); got != "10.0.0.9:7000" {
				t.Fatalf("Peers = %s; want the static peer only", got)
			}
		})
	}
}

func TestStateEntriesValidated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peers.json")
	content := `{"version":1,"peers":[
		{"addr":"10.0.0.2:7331","id":"` + idB + `","fleet":"` + fleetX + `","last_seen":"2026-01-01T00:00:00Z"},
		{"addr":"10.0.0.2:7331","last_seen":"2025-01-01T00:00:00Z"},
		{"addr":"no port"},
		{"addr":"10.0.0.3:7331","id":"BAD"},
		{"addr":"10.0.0.4:7331","fleet":"nope"},
		{"addr":"[::1]:7331"}]}`
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	peers, err := readState(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := addrs(peers), "10.0.0.2:7331 [::1]:7331"; got != want {
		t.Fatalf("readState = %s; want %s", got, want)
	}
	if peers[0].ID != idB {
		t.Fatalf("duplicate address: kept %+v; want the newest entry", peers[0])
	}
	if peers, err := readState(filepath.Join(t.TempDir(), "missing.json")); err != nil || len(peers) != 0 {
		t.Fatalf("readState(missing) = %v, %v; want no peers and no error", peers, err)
	}
}
