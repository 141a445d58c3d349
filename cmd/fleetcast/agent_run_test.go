package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/internal/nettest"
	"github.com/fleetcast/fleetcast/internal/origintest"
)

// TestAgentRunsAndStopsOnSIGTERM runs the agent in the foreground, as the
// service manager does: it installs the release, reports it on the status
// API, and exits 0 within a few seconds of SIGTERM.
func TestAgentRunsAndStopsOnSIGTERM(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM on Windows")
	}
	c := newCLI(t)
	setupRoot(t, c, []string{"a"}, "1")
	c.ok("root", "publish", "--origin", "origin", "root.json")
	data := randomBytes(41, 300<<10)
	c.write("app.bin", data)
	target := c.path("target/app")
	c.ok("publish", "--origin", "origin", "--root", "root.json", "--key", "a.key", "--product", "app",
		"--channel", "stable", "--version", "1.0", "--installer", "file", "--target", target, "app.bin")
	origin := origintest.New(t, c.path("origin"))

	port := nettest.FreePort(t)
	c.write("agent.toml", []byte(fmt.Sprintf(`data_dir = "data"
origin = %q
root = "root.json"
listen = "127.0.0.1:%d"
mdns = false
poll_interval = "1h"
allowed_targets = [%q]
[[subscription]]
product = "app"
channel = "stable"
`, origin.URL(), port, c.path("target")+"/")))

	cmd := exec.Command(fleetcastBin, "agent", "--config", "agent.toml")
	cmd.Dir = c.dir
	cmd.Env = filteredEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("agent stderr:\n%s", stderr.String())
		}
	}()

	status := fmt.Sprintf("http://127.0.0.1:%d/v1/status", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if installedSequence(status) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the status API did not report sequence 1 installed within 20s")
		}
		select {
		case err := <-done:
			t.Fatalf("agent exited early: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if got, _ := os.ReadFile(target); !bytes.Equal(got, data) {
		t.Fatal("target is not the release")
	}

	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("agent exited with %v after SIGTERM, want 0", err)
		}
		t.Logf("stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("agent still running 5s after SIGTERM")
	}
}

func installedSequence(url string) uint64 {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var st struct {
		Subscriptions []struct {
			InstalledSequence uint64 `json:"installed_sequence"`
		} `json:"subscriptions"`
	}
	if json.NewDecoder(resp.Body).Decode(&st) != nil || len(st.Subscriptions) != 1 {
		return 0
	}
	return st.Subscriptions[0].InstalledSequence
}
