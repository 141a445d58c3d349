//go:build unix

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/internal/treetest"
)

// TestAgentRefusesPlantedReleasesLink replays the attack review's finding
// with the real binary: TARGET/releases planted as a symlink to a
// directory of system-looking subdirectories (two days old). `agent
// --once` of a harmless archive must refuse the install, name the link,
// and leave that directory exactly as it was; once the operator removes
// the link, the same release installs.
func TestAgentRefusesPlantedReleasesLink(t *testing.T) {
	e := newAgentEnv(t)
	victims := e.path("etc-like")
	old := time.Now().Add(-48 * time.Hour)
	for _, d := range []string{"ssh", "systemd", "cron.d", "apt", "ssl"} {
		p := filepath.Join(victims, d, "config")
		e.write(filepath.Join("etc-like", d, "config"), []byte(d))
		os.Chtimes(p, old, old)
		os.Chtimes(filepath.Dir(p), old, old)
	}
	target := e.path(filepath.Join("install", "myapp"))
	e.write("agent.toml", []byte(fmt.Sprintf(`data_dir = "data"
origin = %q
root = "root.json"
listen = ""
allowed_targets = [%q]
allowed_installers = ["archive"]
keep_releases = 1
retries = 1
retry_backoff = "10ms"
[[subscription]]
product = %q
channel = %q
`, e.origin.URL(), e.path("install"), e2eProduct, e2eChannel)))
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victims, filepath.Join(target, "releases")); err != nil {
		t.Fatal(err)
	}
	archive, err := treetest.Tar(map[string]string{"bin/app": "harmless"})
	if err != nil {
		t.Fatal(err)
	}
	e.write("release.tar", archive)
	e.ok("publish", "--origin", "origin", "--root", "root.json", "--key", "a.key",
		"--product", e2eProduct, "--channel", e2eChannel, "--version", "1.0",
		"--installer", "archive", "--target", target, "release.tar")

	before := treeListing(t, victims)
	log := e.onceWant(1, "unsafe target", filepath.Join(target, "releases"), "symbolic link")
	if d := treetest.Diff(before, treeListing(t, victims)); d != "" {
		t.Fatalf("the directory behind the planted link changed:\n%s\nagent log:\n%s", d, log)
	}
	if _, err := os.Lstat(filepath.Join(target, "current")); err == nil {
		t.Fatal("current was created although the install was refused")
	}

	if err := os.Remove(filepath.Join(target, "releases")); err != nil {
		t.Fatal(err)
	}
	e.onceWant(0, "release installed")
	if got, err := os.ReadFile(filepath.Join(target, "current", "bin", "app")); err != nil || string(got) != "harmless" {
		t.Fatalf("after the link was removed: current/bin/app %q, %v", got, err)
	}
	if d := treetest.Diff(before, treeListing(t, victims)); d != "" {
		t.Fatalf("the victims changed after the real install:\n%s", d)
	}
}

// treeListing is treetest.Listing of dir.
func treeListing(t *testing.T, dir string) map[string]string {
	t.Helper()
	m, err := treetest.Listing(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
