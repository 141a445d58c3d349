package main

import (
	"context"
	"errors"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/manifest"
)

// TestPublishNameMessages: a product or channel name that the origin cannot
// take is refused before anything is written, with every rule a name must
// follow (the agent's config says the same), as a usage error.
func TestPublishNameMessages(t *testing.T) {
	c := newCLI(t)
	c.write("app.bin", []byte("artifact"))
	for _, tc := range []struct {
		name, product, channel, want string
	}{
		{"reserved product", "roots", "stable", `--product "roots": want ` + manifest.NameRule},
		{"reserved channel", "app", "chunks", `--channel "chunks": want ` + manifest.NameRule},
		{"first character", "app", ".", `--channel ".": want ` + manifest.NameRule},
		{"upper case", "App", "stable", `--product "App": want ` + manifest.NameRule},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.run("publish", "--origin", "origin", "--key", "missing.key", "--product", tc.product, "--channel", tc.channel,
				"--version", "1.0", "app.bin")
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 and %q", r.code, r.stderr, tc.want)
			}
		})
	}
	for _, rule := range []string{"starting with a letter or digit", "not roots or chunks"} {
		if !strings.Contains(manifest.NameRule, rule) {
			t.Errorf("manifest.NameRule %q does not say %q", manifest.NameRule, rule)
		}
	}
}

// TestAgentConfigMessages: at start, `fleetcast agent` warns of an
// allowed_targets prefix that opens the whole system, saying what it
// allows, and refuses a configuration path that is not a regular file at
// once instead of waiting on it.
func TestAgentConfigMessages(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix paths and named pipes")
	}
	c := newCLI(t)
	c.write("agent.toml", []byte(`origin = "http://127.0.0.1:1/"
root = "missing-root.json"
data_dir = "data"
listen = ""
allowed_targets = ["/", "/opt/app/"]
[[subscription]]
product = "app"
channel = "stable"
`))
	r := c.run("agent", "--config", "agent.toml", "--once")
	const want = `allowed_targets \"/\" lets any release signed by the root's keys replace any file on this machine`
	if !strings.Contains(r.stderr, "level=WARN") || !strings.Contains(r.stderr, want) {
		t.Errorf("stderr %q: want a warning %q", r.stderr, want)
	}

	fifo := c.path("fifo.toml")
	if out, err := exec.Command("mkfifo", fifo).CombinedOutput(); err != nil {
		t.Skipf("mkfifo: %v %s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, fleetcastBin, "agent", "--config", fifo, "--once")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("fleetcast agent --config FIFO still running after 20 s")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "is a named pipe (FIFO), not a regular file") {
		t.Errorf("fleetcast agent --config FIFO: %v, output %q; want exit 1 saying it is a named pipe", err, out)
	}
}
