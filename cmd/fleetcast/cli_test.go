package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

// setupRoot makes keys a, b (and c when n == 3) and a root of threshold k signed by all of them.
func setupRoot(t *testing.T, c *cli, names []string, k string) {
	t.Helper()
	args := []string{"root", "init", "-o", "root.json", "--threshold", k}
	for _, n := range names {
		c.ok("keygen", "-o", n)
		args = append(args, "--key", n+".pub")
	}
	c.ok(args...)
	for _, n := range names {
		c.ok("root", "sign", "--yes", "--key", n+".key", "root.json")
	}
}

func TestKeygenWritesProtectedKeys(t *testing.T) {
	c := newCLI(t)
	out := c.ok("keygen", "-o", "rel")
	if !strings.Contains(out, "encrypted") || !strings.Contains(out, "key ") {
		t.Errorf("keygen output %q does not name the key id and encryption", out)
	}
	fi, err := os.Stat(c.path("rel.key"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("rel.key mode %v, want 0600", fi.Mode().Perm())
	}
	key, _ := os.ReadFile(c.path("rel.key"))
	if !bytes.Contains(key, []byte(`"kdf": "scrypt"`)) || bytes.Contains(key, []byte(`"seed"`)) {
		t.Errorf("private key is not encrypted:\n%s", key)
	}
	c.fails("refusing to overwrite", "keygen", "-o", "rel")

	c.write("pubonly.pub", []byte("someone else's key"))
	c.fails("pubonly.pub exists: refusing to overwrite", "keygen", "-o", "pubonly")
	if _, err := os.Stat(c.path("pubonly.key")); err == nil {
		t.Error("keygen wrote pubonly.key next to an existing pubonly.pub")
	}

	c.ok("keygen", "-o", "plain", "--unencrypted")
	plain, _ := os.ReadFile(c.path("plain.key"))
	if !bytes.Contains(plain, []byte(`"kdf": "none"`)) {
		t.Errorf("--unencrypted key is not plain:\n%s", plain)
	}
}

func TestKeyFileModeWarning(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	c := newCLI(t)
	setupRoot(t, c, []string{"a"}, "1")
	if r := c.run("root", "sign", "--yes", "--key", "a.key", "root.json"); r.code != 0 || strings.Contains(r.stderr, "warning") {
		t.Fatalf("0600 key: exit %d, stderr %q; want no warning", r.code, r.stderr)
	}
	if err := os.Chmod(c.path("a.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := c.run("root", "sign", "--yes", "--key", "a.key", "root.json")
	if want := "warning: key file a.key is readable by group or others (mode 0644): chmod 600 a.key"; r.code != 0 || !strings.Contains(r.stderr, want) {
		t.Fatalf("0644 key: exit %d, stderr %q; want exit 0 and %q", r.code, r.stderr, want)
	}
}

func TestKeygenWithoutPassphraseSource(t *testing.T) {
	c := newCLI(t)
	c.env = nil // no FLEETCAST_PASSPHRASE, stdin is not a terminal
	c.fails("no passphrase", "keygen", "-o", "k")
	c.write("pass.txt", []byte("from a file\n"))
	c.ok("keygen", "-o", "k", "--passphrase-file", "pass.txt")
	c.ok("root", "init", "-o", "root.json", "--key", "k.pub")
	c.ok("root", "sign", "--yes", "--key", "k.key", "--passphrase-file", "pass.txt", "root.json")
}

func TestPassphraseFileWinsOverEnvironment(t *testing.T) {
	c := newCLI(t) // FLEETCAST_PASSPHRASE is set
	c.write("pass.txt", []byte("from the file\r\n"))
	c.ok("keygen", "-o", "k", "--passphrase-file", "pass.txt")
	c.ok("root", "init", "-o", "root.json", "--key", "k.pub")
	c.fails("wrong passphrase", "root", "sign", "--yes", "--key", "k.key", "root.json") // the environment's passphrase
	c.env = []string{"FLEETCAST_PASSPHRASE=from the file"}
	c.ok("root", "sign", "--yes", "--key", "k.key", "root.json")
}

func TestPassphraseFileIsBounded(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	c := newCLI(t)
	start := time.Now()
	c.fails("passphrase file /dev/zero holds more than 4096 bytes", "keygen", "-o", "k", "--passphrase-file", "/dev/zero")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("keygen --passphrase-file /dev/zero took %v", d)
	}
	c.write("empty.txt", []byte("\n"))
	c.fails("is empty", "keygen", "-o", "k", "--passphrase-file", "empty.txt")
}

func TestWrongPassphrase(t *testing.T) {
	c := newCLI(t)
	setupRoot(t, c, []string{"a"}, "1")
	c.env = []string{"FLEETCAST_PASSPHRASE=wrong"}
	c.write("app.bin", randomBytes(1, 1000))
	c.fails("wrong passphrase", "publish", "--origin", "mirror", "--root", "root.json", "--key", "a.key",
		"--product", "app", "--channel", "stable", "--version", "1", "--target", "/opt/app", "app.bin")
	if _, err := os.Stat(c.path("mirror/app/stable/manifest.json")); err == nil {
		t.Fatal("a manifest was published with a key that was not decrypted")
	}
}

func TestUsageErrors(t *testing.T) {
	c := newCLI(t)
	for _, args := range [][]string{
		{"nosuchcommand"},
		{"keygen"},
		{"publish", "--origin", "x"},
		{"verify", "m.json"},
		{"root"},
		{"keygen", "--bogus-flag"},
		{"publish", "--origin", "m", "--expires", "0", "--key", "a.key", "f"},
		{"publish", "--origin", "m", "--expires", "-1h", "--key", "a.key", "f"},
		{"root", "init", "-o", "r.json", "--key", "a.pub", "--expires", "0"},
		{"root", "init", "-o", "r.json", "--key", "a.pub", "--expires", "-5m"},
	} {
		if r := c.run(args...); r.code != 2 {
			t.Errorf("fleetcast %v: exit %d, want 2 (usage); stderr %q", args, r.code, r.stderr)
		}
	}
	if r := c.run("publish", "-h"); r.code != 0 || !strings.Contains(r.stderr, "Example:") {
		t.Errorf("publish -h: exit %d, want 0 and an example in %q", r.code, r.stderr)
	}
}

func TestPublishCosignVerify(t *testing.T) {
	c := newCLI(t)
	setupRoot(t, c, []string{"a", "b", "c"}, "2")
	artifact := randomBytes(2, 5<<20)
	c.write("app.bin", artifact)
	common := []string{"--origin", "mirror", "--product", "app", "--channel", "stable", "--installer", "file", "--target", "/opt/app/bin/app", "--mode", "0755"}

	out := c.ok(append([]string{"publish", "--root", "root.json", "--key", "a.key", "--version", "1.0.0"}, append(common, "app.bin")...)...)
	if !strings.Contains(out, "NOT published: 1 more signature") {
		t.Fatalf("publish below threshold did not say so:\n%s", out)
	}
	pending := "mirror/app/stable/pending/1.json"
	c.fails("1 valid signature(s) from trusted keys, 2 required", "verify", "--root", "root.json", pending)
	c.ok("sign", "--yes", "--key", "b.key", pending)
	out = c.ok("publish", "--origin", "mirror", "--manifest", pending)
	if !strings.Contains(out, "published mirror/app/stable/manifest.json") {
		t.Fatalf("publish --manifest output:\n%s", out)
	}
	out = c.ok("verify", "--root", "root.json", "--artifact", "app.bin", "mirror/app/stable/manifest.json")
	for _, want := range []string{"signatures 2 valid of 2 required", "sequence 1", "chunks and whole-file SHA-256 match", "OK"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}

	// The same version again is refused; a changed artifact under a new version is a delta.
	c.fails("version already published", append([]string{"publish", "--key", "a.key", "--key", "b.key", "--version", "1.0.0"}, append(common, "app.bin")...)...)
	changed := bytes.Clone(artifact)
	copy(changed[3<<20:], []byte("a small change in the middle"))
	c.write("app.bin", changed)
	out = c.ok(append([]string{"publish", "--key", "a.key", "--key", "c.key", "--version", "1.0.1"}, append(common, "app.bin")...)...)
	if !strings.Contains(out, "sequence 2") || !strings.Contains(out, "published") {
		t.Fatalf("second publish:\n%s", out)
	}
	if !strings.Contains(out, "(1 new to the origin)") && !strings.Contains(out, "(2 new to the origin)") {
		t.Errorf("a 28-byte change should add one or two chunks to the origin:\n%s", out)
	}
	c.ok("verify", "--root", "root.json", "--artifact", "app.bin", "mirror/app/stable/manifest.json")
	c.fails("does not match the manifest", "verify", "--root", "root.json", "--artifact", "app.bin", "mirror/app/stable/history/1.json")
}

func TestPublishNameAndInstallSection(t *testing.T) {
	c := newCLI(t)
	setupRoot(t, c, []string{"a"}, "1")
	c.write("build/out.deb", randomBytes(5, 3000))
	c.ok("publish", "--origin", "mirror", "--root", "root.json", "--key", "a.key",
		"--product", "app", "--channel", "stable", "--version", "2.0", "--name", "app_2.0_amd64.deb",
		"--installer", "command", "--command", "dpkg -i {artifact}", "--mode", "0644",
		"--health-check", "/usr/bin/app --self-test", "--rollback-command", "dpkg -r app", "build/out.deb")
	out := c.ok("verify", "--root", "root.json", "--artifact", "build/out.deb", "mirror/app/stable/manifest.json")
	for _, want := range []string{
		"artifact   app_2.0_amd64.deb: 3000 bytes",
		`install    command, mode 0644, command ["dpkg" "-i" "{artifact}"], health check ["/usr/bin/app" "--self-test"], rollback command ["dpkg" "-r" "app"]` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasSuffix(line, " ") {
			t.Errorf("verify output line %q ends in a space", line)
		}
	}
}

func TestSignShowsReleaseAndNeedsConfirmation(t *testing.T) {
	c := newCLI(t)
	setupRoot(t, c, []string{"a", "b"}, "2")
	c.write("app.bin", randomBytes(6, 2000))
	c.write("other.bin", randomBytes(7, 2000))
	c.ok("publish", "--origin", "mirror", "--root", "root.json", "--key", "a.key",
		"--product", "app", "--channel", "stable", "--version", "3.1", "--name", "app-3.1",
		"--installer", "command", "--command", "/usr/bin/install-app --from {artifact}",
		"--health-check", "/usr/bin/app --ok", "app.bin")
	pending := "mirror/app/stable/pending/1.json"
	before, err := os.ReadFile(c.path(pending))
	if err != nil {
		t.Fatal(err)
	}
	unchanged := func(what string) {
		t.Helper()
		if after, _ := os.ReadFile(c.path(pending)); !bytes.Equal(before, after) {
			t.Fatalf("%s: the pending manifest was changed", what)
		}
	}

	// stdin is not a terminal: without --yes, show everything and refuse.
	r := c.fails("refusing to co-sign without confirmation: review the release above and pass --yes", "sign", "--key", "b.key", pending)
	for _, want := range []string{
		"app/stable version 3.1, sequence 1",
		"created    ", "expires    ",
		"artifact   app-3.1, 2000 bytes, sha256 ",
		"chunks     1",
		"installer         command",
		"target            (none)",
		`command           ["/usr/bin/install-app" "--from" "{artifact}"]`,
		`health_check      ["/usr/bin/app" "--ok"]`,
		"rollback_command  (none)",
		"signed by  ",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("sign output lacks %q:\n%s", want, r.stdout)
		}
	}
	unchanged("sign without --yes")

	c.fails("refusing to sign: other.bin: artifact: ", "sign", "--yes", "--artifact", "other.bin", "--key", "b.key", pending)
	unchanged("sign --artifact with the wrong file")

	out := c.ok("sign", "--yes", "--artifact", "app.bin", "--key", "b.key", pending)
	if !strings.Contains(out, "chunks and whole-file SHA-256 match") || !strings.Contains(out, "signed with key") {
		t.Fatalf("sign --artifact --yes:\n%s", out)
	}
	c.ok("publish", "--origin", "mirror", "--manifest", pending)
}

func TestRootSignShowsRootAndNeedsConfirmation(t *testing.T) {
	c := newCLI(t)
	c.ok("keygen", "-o", "a")
	c.ok("keygen", "-o", "b")
	c.ok("root", "init", "-o", "root.json", "--key", "a.pub", "--key", "b.pub", "--threshold", "2", "--expires", "48h")
	r := c.fails("refusing to sign the root without confirmation: review the root above and pass --yes", "root", "sign", "--key", "a.key", "root.json")
	for _, want := range []string{"root.json: version 1", "expires    ", "threshold  2 of 2 keys", "keys       ", "signed by  nobody yet"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("root sign output lacks %q:\n%s", want, r.stdout)
		}
	}
	c.ok("root", "sign", "--yes", "--key", "a.key", "root.json")
	if out := c.fails("refusing", "root", "sign", "--key", "b.key", "root.json").stdout; strings.Contains(out, "nobody yet") {
		t.Errorf("root sign does not list the existing signature:\n%s", out)
	}
}

func TestPublishRefusesForeignKey(t *testing.T) {
	c := newCLI(t)
	setupRoot(t, c, []string{"a"}, "1")
	c.ok("keygen", "-o", "stranger")
	c.write("app.bin", randomBytes(3, 1000))
	c.fails("not in the trust root", "publish", "--origin", "mirror", "--root", "root.json", "--key", "stranger.key",
		"--product", "app", "--channel", "stable", "--version", "1", "--target", "/opt/app", "app.bin")
	c.fails("no such file", "publish", "--origin", "mirror", "--key", "a.key",
		"--product", "app", "--channel", "stable", "--version", "1", "--target", "/opt/app", "missing.bin")
}

func TestRootRotation(t *testing.T) {
	c := newCLI(t)
	setupRoot(t, c, []string{"old"}, "1")
	c.write("app.bin", randomBytes(4, 1<<20))
	c.ok("publish", "--origin", "mirror", "--root", "root.json", "--key", "old.key",
		"--product", "app", "--channel", "stable", "--version", "1", "--target", "/opt/app", "app.bin")

	c.ok("keygen", "-o", "new")
	c.ok("root", "init", "-o", "root2.json", "--previous", "root.json", "--key", "new.pub")
	c.ok("root", "sign", "--yes", "--key", "new.key", "root2.json")
	c.fails("rotation refused", "root", "publish", "--origin", "mirror", "root2.json")
	c.ok("root", "sign", "--yes", "--key", "old.key", "root2.json")
	c.ok("root", "publish", "--origin", "mirror", "root2.json")

	c.fails("not in the trust root", "publish", "--origin", "mirror", "--key", "old.key",
		"--product", "app", "--channel", "stable", "--version", "2", "--target", "/opt/app", "app.bin")
	c.ok("publish", "--origin", "mirror", "--key", "new.key",
		"--product", "app", "--channel", "stable", "--version", "2", "--target", "/opt/app", "app.bin")
	// A verifier pinned to version 1 needs the chain to trust the new key.
	c.fails("not in root version 1", "verify", "--root", "root.json", "mirror/app/stable/manifest.json")
	out := c.ok("verify", "--root", "root.json", "--roots", "mirror/roots", "mirror/app/stable/manifest.json")
	if !strings.Contains(out, "now version 2") {
		t.Errorf("verify did not report the rotation:\n%s", out)
	}
}

func TestVerifyRefusesOversizedAndUnreadable(t *testing.T) {
	c := newCLI(t)
	setupRoot(t, c, []string{"a"}, "1")
	big, err := os.Create(c.path("big.json"))
	if err != nil {
		t.Fatal(err)
	}
	big.Truncate(24<<20 + 1)
	big.Close()
	c.fails("exceeds size limit", "verify", "--root", "root.json", "big.json")
	c.fails("no such file", "verify", "--root", "root.json", "missing.json")
	c.fails("no such file", "verify", "--root", "missing-root.json", "big.json")
	if err := os.WriteFile(c.path("unreadable.json"), []byte("{}"), 0o000); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 { // root reads anything
		c.fails("permission denied", "verify", "--root", "root.json", "unreadable.json")
	}
	c.write("dir.json/x", nil)
	c.fails("dir.json", "verify", "--root", "root.json", filepath.Join("dir.json"))
}
