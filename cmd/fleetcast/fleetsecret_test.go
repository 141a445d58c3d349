package main

import (
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

func TestFleetSecret(t *testing.T) {
	c := newCLI(t)
	out := c.ok("fleet-secret", "fleet.secret")
	m := regexp.MustCompile(`^fleet id ([0-9a-f]{16}); give fleet.secret to every agent of the fleet \(fleet_secret_file\), mode 0600\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("fleet-secret output %q", out)
	}
	first, err := os.ReadFile(c.path("fleet.secret"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(c.path("fleet.secret")); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("fleet.secret mode %04o, want 0600", fi.Mode().Perm())
	}
	c.fails("exists: refusing to overwrite", "fleet-secret", "fleet.secret")
	if again, _ := os.ReadFile(c.path("fleet.secret")); string(again) != string(first) {
		t.Fatal("fleet-secret replaced an existing secret")
	}
	if out := c.ok("fleet-secret", "other.secret"); strings.Contains(out, m[1]) {
		t.Errorf("two new secrets share fleet id %s", m[1])
	}
	c.fails("no such file or directory", "fleet-secret", "missing/dir/fleet.secret")

	for _, args := range [][]string{{"fleet-secret"}, {"fleet-secret", "a", "b"}, {"fleet-secret", "--bogus", "a"}} {
		if r := c.run(args...); r.code != 2 {
			t.Errorf("fleetcast %v: exit %d, want 2 (usage); stderr %q", args, r.code, r.stderr)
		}
	}
	if r := c.run("fleet-secret", "-h"); r.code != 0 || !strings.Contains(r.stderr, "Example:") {
		t.Errorf("fleet-secret -h: exit %d, want 0 and an example in %q", r.code, r.stderr)
	}
}
