package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fleetcastBin is the real binary, built once by TestMain.
var fleetcastBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fleetcast-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fleetcastBin = filepath.Join(dir, "fleetcast")
	// Built without -race: scrypt (key decryption) runs ~20x slower under the
	// race detector, and the packages run their own tests with -race.
	build := exec.Command("go", "build", "-o", fleetcastBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build fleetcast:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cli runs the fleetcast binary in dir.
type cli struct {
	t   *testing.T
	dir string
	env []string
}

func newCLI(t *testing.T) *cli {
	return &cli{t: t, dir: t.TempDir(), env: []string{"FLEETCAST_PASSPHRASE=correct horse"}}
}

type result struct {
	code           int
	stdout, stderr string
}

func (c *cli) run(args ...string) result {
	c.t.Helper()
	cmd := exec.Command(fleetcastBin, args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ()[:0:0], append(filteredEnv(), c.env...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("run fleetcast %v: %v", args, err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// ok runs the binary and fails the test unless it exits 0.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("fleetcast %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fails runs the binary, wants exit code 1 and want in stderr.
func (c *cli) fails(want string, args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 1 || !strings.Contains(r.stderr, want) {
		c.t.Fatalf("fleetcast %s: exit %d, stderr %q; want exit 1 and %q\nstdout:\n%s", strings.Join(args, " "), r.code, r.stderr, want, r.stdout)
	}
	return r
}

func (c *cli) path(name string) string { return filepath.Join(c.dir, name) }

func (c *cli) write(name string, data []byte) {
	c.t.Helper()
	if err := os.MkdirAll(filepath.Dir(c.path(name)), 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(c.path(name), data, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

func filteredEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FLEETCAST_") {
			out = append(out, kv)
		}
	}
	return out
}
