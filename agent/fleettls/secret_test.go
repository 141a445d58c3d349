package fleettls

import (
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		content []byte // nil: no file
		mode    os.FileMode
		unix    bool   // the check needs Unix permission bits
		wantErr string // "" means success with the fleet of secretA
	}{
		{"ok", secretA, 0o600, false, ""},
		{"whitespace trimmed", append(append([]byte("\n  "), secretA...), " \r\n\t"...), 0o600, false, ""},
		{"owner read only", secretA, 0o400, false, ""},
		{"missing file", nil, 0, false, "no such file"},
		{"too short", []byte("0123456789abcdef0123456789abcde\n"), 0o600, false, "too short (31 bytes, need at least 32): generate one with `fleetcast fleet-secret FILE`"},
		{"only whitespace", []byte(" \n\n"), 0o600, false, "too short (0 bytes"},
		{"too long", bytes.Repeat([]byte("x"), MaxSecretSize+1), 0o600, false, "too long (more than 4096 bytes)"},
		{"group readable", secretA, 0o640, true, "accessible by group or others (mode 0640): whoever reads it joins the fleet; chmod 600"},
		{"world readable", secretA, 0o604, true, "(mode 0604)"},
		{"group writable", secretA, 0o620, true, "chmod 600"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.unix && runtime.GOOS == "windows" {
				t.Skip("no Unix permission bits")
			}
			path := filepath.Join(t.TempDir(), "fleet.secret")
			if tt.content != nil {
				if err := os.WriteFile(path, tt.content, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tt.mode); err != nil {
					t.Fatal(err)
				}
			}
			f, err := Load(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("Load: %v; want an error naming %s and %q", err, path, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := mustFleet(t, secretA).ID(); f.ID() != want || !f.Closed() || f.Scheme() != "https" {
				t.Errorf("fleet %s closed %v scheme %s; want %s closed https", f.ID(), f.Closed(), f.Scheme(), want)
			}
		})
	}
}

func TestLoadLargestSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.secret")
	if err := os.WriteFile(path, bytes.Repeat([]byte("x"), MaxSecretSize), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Fatalf("secret of exactly %d bytes: %v", MaxSecretSize, err)
	}
}

func TestLoadDirectory(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("Load(directory): %v; want not a regular file", err)
	}
}

// TestLoadNamedPipe: a named pipe given as the secret file is refused at
// once, not waited on.
func TestLoadNamedPipe(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no named pipes in the file system")
	}
	path := filepath.Join(t.TempDir(), "fleet.secret")
	if out, err := exec.Command("mkfifo", "-m", "600", path).CombinedOutput(); err != nil {
		t.Skipf("mkfifo: %v %s", err, out)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Load(path)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("Load(named pipe): %v; want not a regular file", err)
		}
	case <-time.After(10 * time.Second):
		if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil { // let the blocked open through
			f.Close()
		}
		t.Fatal("Load(named pipe) still blocked after 10 s")
	}
}

func TestNewSecret(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fleet.secret")
	if err := NewSecret(path); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 65 || first[64] != '\n' {
		t.Fatalf("secret %q: want 64 hex digits and a newline", first)
	}
	if _, err := hex.DecodeString(string(first[:64])); err != nil {
		t.Fatalf("secret %q is not hex: %v", first, err)
	}
	if fi, _ := os.Stat(path); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
	f, err := Load(path)
	if err != nil {
		t.Fatalf("load the new secret: %v", err)
	}

	err = NewSecret(path)
	if err == nil || !strings.Contains(err.Error(), "exists: refusing to overwrite") {
		t.Fatalf("second NewSecret: %v; want a refusal", err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, first) {
		t.Fatal("NewSecret changed an existing secret")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("files left behind: %v", entries)
	}

	other := filepath.Join(dir, "other.secret")
	if err := NewSecret(other); err != nil {
		t.Fatal(err)
	}
	if g, err := Load(other); err != nil || g.ID() == f.ID() {
		t.Errorf("two new secrets: fleets %s and %v (%v); want different fleets", f.ID(), g, err)
	}
}

func TestNewSecretMissingDirectory(t *testing.T) {
	if err := NewSecret(filepath.Join(t.TempDir(), "no", "fleet.secret")); err == nil {
		t.Fatal("NewSecret into a missing directory succeeded")
	}
}
