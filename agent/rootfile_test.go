package agent

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetcast/fleetcast/agent/config"
	"github.com/fleetcast/fleetcast/agent/store"
	"github.com/fleetcast/fleetcast/manifest"
)

// TestRotatedRootUnreadable: an agent whose data_dir/root.json is
// unreadable does not start, and its error says what the file is, how to
// recover and what that costs; done as it says, the agent starts.
func TestRotatedRootUnreadable(t *testing.T) {
	key := liveKey(t)
	root := liveRoot(t, key)
	for _, tc := range []struct {
		name  string
		saved []byte
	}{
		{"garbage", []byte("\x00\x01 not json")},
		{"truncated", root[:len(root)/2]},
		{"unknown field", append(bytes.TrimSuffix(bytes.TrimSpace(bytes.Clone(root)), []byte("}")), `,"extra":1}`...)},
		{"too large", bytes.Repeat([]byte(" "), 4<<20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := config.Default()
			cfg.DataDir, cfg.Root, cfg.Origin = filepath.Join(dir, "data"), filepath.Join(dir, "root.json"), "http://127.0.0.1:1/"
			cfg.Listen, cfg.MDNS = "", false
			cfg.Subscriptions = []manifest.ChannelID{{Product: "app", Channel: "stable"}}
			if err := os.WriteFile(cfg.Root, root, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
				t.Fatal(err)
			}
			saved := store.RootPath(cfg.DataDir)
			if err := os.WriteFile(saved, tc.saved, 0o644); err != nil {
				t.Fatal(err)
			}
			a, err := New(&cfg, slog.New(slog.DiscardHandler))
			if err == nil {
				a.Close()
				t.Fatal("New started with an unreadable rotated root")
			}
			for _, want := range []string{saved, "move it away", "starts from the pinned root", cfg.Root, "version 1",
				"follows the rotations again", "Nothing else is lost", "replace that file with the newest root"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q\nwant it to contain %q", err, want)
				}
			}
			if err := os.Rename(saved, saved+".bad"); err != nil {
				t.Fatal(err)
			}
			a, err = New(&cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatalf("New after moving root.json away: %v", err)
			}
			a.Close()
		})
	}
}
