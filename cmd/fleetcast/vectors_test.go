package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// vectorMessages is what `fleetcast verify` must say for each outcome of the
// vectors in testdata/vectors (see its README).
var vectorMessages = map[string]string{
	"too_large":     "exceeds size limit",
	"bad_signature": "does not verify: payload or signature altered",
	"unknown_key":   "is not in root version",
	"threshold":     "required",
	"expired":       "manifest expired",
	"root_expired":  "trust root expired",
	"payload_type":  "unexpected payload type",
	"malformed":     "malformed input",
	"rotation":      "root rotation refused",
	"invalid":       "invalid manifest",
	"mismatch":      "does not match the manifest",
}

// TestVerifyVectors runs the real binary over every committed test vector: it
// accepts the good ones and rejects each bad one with the reason it stands for.
func TestVerifyVectors(t *testing.T) {
	dir, err := filepath.Abs("../../testdata/vectors")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, e := range entries {
		vdir := filepath.Join(dir, e.Name())
		if _, err := os.Stat(filepath.Join(vdir, "manifest.json")); err != nil {
			continue // not a manifest vector (README, keys/)
		}
		ran++
		t.Run(e.Name(), func(t *testing.T) { runVector(t, vdir) })
	}
	if ran < 20 {
		t.Fatalf("only %d vectors found in %s", ran, dir)
	}
}

func runVector(t *testing.T, vdir string) {
	var hdr struct {
		Description, Expect, Now, Artifact string
	}
	data, err := os.ReadFile(filepath.Join(vdir, "vector.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &hdr); err != nil {
		t.Fatal(err)
	}
	args := []string{"verify", "--root", filepath.Join(vdir, "root.json")}
	if _, err := os.Stat(filepath.Join(vdir, "roots")); err == nil {
		args = append(args, "--roots", filepath.Join(vdir, "roots"))
	}
	if hdr.Artifact != "" {
		args = append(args, "--artifact", filepath.Join(vdir, hdr.Artifact))
	}
	args = append(args, filepath.Join(vdir, "manifest.json"))
	r := (&cli{t: t, dir: t.TempDir()}).run(args...)
	if hdr.Expect == "ok" {
		if r.code != 0 || !strings.HasSuffix(r.stdout, "OK\n") {
			t.Fatalf("%s\nwant OK, got exit %d\nstdout: %s\nstderr: %s", hdr.Description, r.code, r.stdout, r.stderr)
		}
		return
	}
	want, ok := vectorMessages[hdr.Expect]
	if !ok {
		t.Fatalf("vector expects unknown outcome %q", hdr.Expect)
	}
	if r.code != 1 || !strings.Contains(r.stderr, "FAILED") || !strings.Contains(r.stderr, want) {
		t.Fatalf("%s\nwant exit 1 and %q, got exit %d\nstdout: %s\nstderr: %s", hdr.Description, want, r.code, r.stdout, r.stderr)
	}
}

// TestKeyVectorWrongPassphrase decrypts the committed encrypted key vector
// through the CLI: the right passphrase signs, the wrong one is refused.
func TestKeyVectorWrongPassphrase(t *testing.T) {
	var hdr struct {
		Passphrase      string `json:"passphrase"`
		WrongPassphrase string `json:"wrong_passphrase"`
	}
	kdir, _ := filepath.Abs("../../testdata/vectors/keys")
	data, err := os.ReadFile(filepath.Join(kdir, "vector.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &hdr); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t)
	c.ok("root", "init", "-o", "root.json", "--key", filepath.Join(kdir, "encrypted.pub"))
	c.env = []string{"FLEETCAST_PASSPHRASE=" + hdr.WrongPassphrase}
	c.fails("wrong passphrase", "root", "sign", "--yes", "--key", filepath.Join(kdir, "encrypted.key"), "root.json")
	c.env = []string{"FLEETCAST_PASSPHRASE=" + hdr.Passphrase}
	c.ok("root", "sign", "--yes", "--key", filepath.Join(kdir, "encrypted.key"), "root.json")
}
