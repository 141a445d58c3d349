package discovery

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadState: any state file is read without a panic, and what is kept
// is valid and bounded.
func FuzzReadState(f *testing.F) {
	f.Add([]byte(`{"version":1,"peers":[{"addr":"198.18.0.5:7331","id":"0123456789abcdef","fleet":"open","last_seen":"2026-12-01T10:00:00Z"}]}`))
	f.Add([]byte(`{"version":1,"peers":[{"addr":"[2001:db8::1]:7331","last_seen":"2026-12-01T10:00:00Z"},{"addr":"nope"}]}`))
	f.Add([]byte(`{"version":2,"peers":[]}`))
	f.Add([]byte(`[]`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "peers.json")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		peers, err := readState(p)
		if err != nil {
			return
		}
		if len(peers) > maxPeers {
			t.Fatalf("%d peers kept, limit %d", len(peers), maxPeers)
		}
		for _, pr := range peers {
			if _, err := normalizeAddr(pr.Addr); err != nil {
				t.Fatalf("kept bad address %q: %v", pr.Addr, err)
			}
		}
	})
}
