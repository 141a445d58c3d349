package agent

import (
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/fleetcast/fleetcast/agent/config"
	"github.com/fleetcast/fleetcast/internal/testlog"
	"github.com/fleetcast/fleetcast/manifest"
)

// TestNewFromFile: the agent runs with the configuration as config.Load
// returns it (relative paths resolved, normalized), logs its warnings, and
// refuses a bad one with config.Load's message.
func TestNewFromFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix paths")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "root.json"), liveRoot(t, liveKey(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	const body = `origin = "http://127.0.0.1:1/mirror"
root = "root.json"
data_dir = "data/"
listen = ""
mdns = false
allowed_targets = ["/"]
[[subscription]]
product = "app"
channel = "stable"
`
	path := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs testlog.Buffer
	a, err := NewFromFile(path, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	want, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*a.cfg, *want) {
		t.Errorf("agent's config\n%+v\nconfig.Load's\n%+v", *a.cfg, *want)
	}
	if a.cfg.Origin != "http://127.0.0.1:1/mirror/" || a.cfg.DataDir != filepath.Join(dir, "data") {
		t.Errorf("origin %q, data_dir %q: not normalized", a.cfg.Origin, a.cfg.DataDir)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), `allowed_targets \"/\"`) {
		t.Errorf("log %q: want the warning about allowed_targets \"/\"", logs.String())
	}

	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("retries = 99\n"+body), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = NewFromFile(bad, slog.New(slog.DiscardHandler))
	if want := "config: " + bad + ": retries 99: must be between 0 and 20"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

// TestNewNormalizesACopy: New runs with a normalized copy of a Config built
// in code and leaves the caller's as it was; a bad one is refused with
// Validate's message.
func TestNewNormalizesACopy(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix paths")
	}
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir, cfg.Root, cfg.Origin = filepath.Join(dir, "data")+"/", filepath.Join(dir, "x", "..", "root.json"), "http://127.0.0.1:1"
	cfg.Listen, cfg.MDNS = "", false
	cfg.Subscriptions = []manifest.ChannelID{{Product: "app", Channel: "stable"}}
	if err := os.WriteFile(filepath.Join(dir, "root.json"), liveRoot(t, liveKey(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	before := cfg
	a, err := New(&cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if !reflect.DeepEqual(cfg, before) {
		t.Errorf("New changed the caller's config:\nbefore %+v\nafter  %+v", before, cfg)
	}
	if n := cfg.Normalized(); !reflect.DeepEqual(*a.cfg, n) {
		t.Errorf("agent's config\n%+v\nwant\n%+v", *a.cfg, n)
	}

	cfg.Retries = 99
	if _, err := New(&cfg, slog.New(slog.DiscardHandler)); err == nil || err.Error() != "config: retries 99: must be between 0 and 20" {
		t.Errorf("got %v, want Validate's message", err)
	}
}
