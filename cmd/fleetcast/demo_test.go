package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// demoDeadline bounds the whole demo in TestDemo: a failure, not a speed
// measurement.
const demoDeadline = 60 * time.Second

// TestDemo runs the real `fleetcast demo` with three agents and an 8 MiB
// release and checks what it reports: both releases on every agent, the
// origin sending about one copy of release 1, release 2 mostly reused,
// every installed file verified, and the demo directory removed.
func TestDemo(t *testing.T) {
	parent := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), demoDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, fleetcastBin, "demo", "--agents", "3", "--size", "8MiB", "--dir", parent)
	cmd.Env = filteredEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := stdout.String()
	if ctx.Err() != nil {
		t.Fatalf("fleetcast demo did not finish within %v\nstdout:\n%s\nstderr:\n%s", demoDeadline, out, stderr.String())
	}
	if err != nil {
		t.Fatalf("fleetcast demo: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	t.Logf("output:\n%s", out)
	for _, want := range []string{
		"throwaway demo key",
		"limited to 40 Mbit/s, like a branch office's WAN link",
		"mDNS: loopback",
		"release 1 installed on all 3 agents",
		"release 2 installed on all 3 agents",
		"verified: every agent's installed demo-app.bin is release 2, byte for byte",
		"stopped 3 agents",
		"demo done in",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("output to a pipe has escape codes")
	}
	checkDemoInstalls(t, out, 3)
	checkDemoFleet(t, out)
	if entries, err := os.ReadDir(parent); err != nil || len(entries) != 0 {
		t.Errorf("demo directory not removed: %v entries in %s (%v)", len(entries), parent, err)
	}
}

// checkDemoInstalls wants one "installed" line per agent and release.
func checkDemoInstalls(t *testing.T, out string, agents int) {
	t.Helper()
	for i := 1; i <= agents; i++ {
		re := regexp.MustCompile(`(?m)^  agent` + strconv.Itoa(i) + `: installed after `)
		if n := len(re.FindAllString(out, -1)); n != 2 {
			t.Errorf("agent%d: %d installed lines, want 2 (one per release)", i, n)
		}
	}
}

// checkDemoFleet reads the fleet lines: release 1 from the origin about
// once, release 2 reused for the most part.
func checkDemoFleet(t *testing.T, out string) {
	t.Helper()
	ratios := regexp.MustCompile(`fleet: origin sent .* = ([0-9.]+)x of the release`).FindAllStringSubmatch(out, -1)
	if len(ratios) != 2 {
		t.Fatalf("%d fleet lines, want 2", len(ratios))
	}
	if r, err := strconv.ParseFloat(ratios[0][1], 64); err != nil || r >= 1.5 || r < 0.9 {
		t.Errorf("release 1: origin sent %sx of the release to 3 agents; want about 1x (0.9 to 1.5)", ratios[0][1])
	}
	reused := regexp.MustCompile(`reused on every agent: at least ([0-9.]+)% of the artifact`).FindStringSubmatch(out)
	if reused == nil {
		t.Fatal("no reused line for release 2")
	}
	if r, err := strconv.ParseFloat(reused[1], 64); err != nil || r <= 90 {
		t.Errorf("release 2: reused %s%% of the artifact on some agent; want over 90%%", reused[1])
	}
}

// TestDemoUsage checks that bad flags are usage errors (exit 2) that
// create nothing.
func TestDemoUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--agents", "1"}, "--agents 1: want 2 to 16"},
		{[]string{"--size", "lots"}, `--size "lots"`},
		{[]string{"--size", "1KiB"}, "--size 1024 bytes"},
		{[]string{"--origin-rate", "0.5"}, "--origin-rate 0.5"},
		{[]string{"extra"}, "want no arguments"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			parent := t.TempDir()
			cmd := exec.Command(fleetcastBin, append([]string{"demo", "--dir", parent}, tc.args...)...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("demo %v: %v, stderr %q; want exit 2 and %q", tc.args, err, stderr.String(), tc.want)
			}
			if entries, _ := os.ReadDir(parent); len(entries) != 0 {
				t.Errorf("demo %v created %d entries", tc.args, len(entries))
			}
		})
	}
}
