package installers

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/fleetcast/fleetcast/manifest"
)

func TestFileInstall(t *testing.T) {
	sh := lookPath(t, "sh")
	pass, fail := []string{sh, "-c", "exit 0"}, []string{sh, "-c", "exit 1"}
	const absent = "<absent>"
	tests := []struct {
		name         string
		before       string // target content before; absent for none
		prev         bool   // a previous release ("old", mode 0600) exists
		mode         string
		health       []string
		wantContent  string
		wantMode     fs.FileMode
		wantOriginal string // StateDir/original; absent for none
		wantNone     bool   // StateDir/original.none exists
		wantHealth   bool   // errors.Is(err, ErrHealthCheck)
	}{
		{name: "new file", before: absent, mode: "0755", wantContent: "new", wantMode: 0o755,
			wantOriginal: absent, wantNone: true},
		{name: "new file default mode", before: absent, wantContent: "new", wantMode: 0o644,
			wantOriginal: absent, wantNone: true},
		{name: "replace unmanaged file saves original", before: "orig", mode: "0700", health: pass,
			wantContent: "new", wantMode: 0o700, wantOriginal: "orig"},
		{name: "replace previous release", before: "old", prev: true, mode: "0640",
			wantContent: "new", wantMode: 0o640, wantOriginal: absent},
		{name: "setuid mode", before: absent, mode: "04755", wantContent: "new", wantMode: 0o755 | fs.ModeSetuid,
			wantOriginal: absent, wantNone: true},
		{name: "rollback to previous", before: "old", prev: true, mode: "0755", health: fail,
			wantContent: "old", wantMode: 0o600, wantOriginal: absent, wantHealth: true},
		{name: "rollback to original", before: "orig", mode: "0755", health: fail,
			wantContent: "orig", wantMode: 0o640, wantOriginal: "orig", wantHealth: true},
		{name: "rollback removes target", before: absent, mode: "0755", health: fail,
			wantContent: absent, wantOriginal: absent, wantNone: true, wantHealth: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, state := t.TempDir(), t.TempDir()
			target := filepath.Join(dir, "opt", "bin", "app")
			if tc.before != absent {
				writeFile(t, target, []byte(tc.before), 0o640)
			}
			newRel := release(t, dir, 2, "2.0", []byte("new"),
				manifest.Install{Installer: "file", Target: target, Mode: tc.mode, HealthCheck: tc.health})
			var prev *Release
			if tc.prev {
				p := release(t, dir, 1, "1.0", []byte("old"), manifest.Install{Installer: "file", Target: target, Mode: "0600"})
				prev = &p
			}
			res, err := Install(context.Background(), request(t, newRel, prev, state))
			if got := errors.Is(err, ErrHealthCheck); got != tc.wantHealth {
				t.Fatalf("Install: %v; health check failure %v, want %v", err, got, tc.wantHealth)
			}
			if err != nil {
				if ie := asError(t, err); ie.Step != stepHealthCheck || !ie.RolledBack {
					t.Errorf("error %+v: want step health-check, rolled back", ie)
				}
			} else if len(res.Steps) == 0 {
				t.Error("no steps in result")
			}
			if got := readFile(t, target); got != tc.wantContent {
				t.Errorf("target holds %q, want %q", got, tc.wantContent)
			}
			if tc.wantContent != absent && runtime.GOOS != "windows" {
				if fi, err := os.Stat(target); err == nil && fi.Mode()&(fs.ModePerm|fs.ModeSetuid) != tc.wantMode {
					t.Errorf("target mode %v, want %v", fi.Mode(), tc.wantMode)
				}
			}
			if got := readFile(t, filepath.Join(state, originalName)); got != tc.wantOriginal {
				t.Errorf("saved original %q, want %q", got, tc.wantOriginal)
			}
			if got := exists(filepath.Join(state, originalNone)); got != tc.wantNone {
				t.Errorf("original.none exists: %v, want %v", got, tc.wantNone)
			}
			if art := readFile(t, newRel.Artifact); art != "new" {
				t.Errorf("artifact changed to %q", art)
			}
			assertNoTemps(t, filepath.Dir(target))
		})
	}
}

// assertNoTemps fails if dir holds a temporary file of the file installer.
func assertNoTemps(t *testing.T, dir string) {
	t.Helper()
	for _, n := range listDir(t, dir) {
		if strings.Contains(n, tempInfix) {
			t.Errorf("temporary file %s left in %s", n, dir)
		}
	}
}

// TestFileRerunAfterCrash replays states an install killed at different
// moments leaves, and checks that running it again finishes the job and
// that rollback still restores the real original.
func TestFileRerunAfterCrash(t *testing.T) {
	fail := []string{lookPath(t, "sh"), "-c", "exit 1"}
	tests := []struct {
		name  string
		setup func(t *testing.T, target, state string)
	}{
		{"killed while copying", func(t *testing.T, target, state string) {
			writeFile(t, filepath.Join(filepath.Dir(target), ".app"+tempInfix+"123"), []byte("ne"), 0o600)
		}},
		{"killed after saving the original", func(t *testing.T, target, state string) {
			writeFile(t, filepath.Join(state, originalName), []byte("orig"), 0o640)
			writeFile(t, filepath.Join(filepath.Dir(target), ".app"+tempInfix+"456"), []byte("new"), 0o600)
		}},
		{"killed while saving the original", func(t *testing.T, target, state string) {
			writeFile(t, filepath.Join(state, "."+originalName+tempInfix+"789"), []byte("or"), 0o600)
		}},
		{"killed after the rename", func(t *testing.T, target, state string) {
			writeFile(t, filepath.Join(state, originalName), []byte("orig"), 0o640)
			writeFile(t, target, []byte("new"), 0o755)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, state := t.TempDir(), t.TempDir()
			target := writeFile(t, filepath.Join(dir, "bin", "app"), []byte("orig"), 0o640)
			tc.setup(t, target, state)
			in := manifest.Install{Installer: "file", Target: target, Mode: "0755"}
			newRel := release(t, dir, 1, "1.0", []byte("new"), in)
			if _, err := Install(context.Background(), request(t, newRel, nil, state)); err != nil {
				t.Fatalf("rerun: %v", err)
			}
			if got := readFile(t, target); got != "new" {
				t.Fatalf("target %q after rerun, want new", got)
			}
			assertNoTemps(t, filepath.Dir(target))
			assertNoTemps(t, state)
			newRel.Install.HealthCheck = fail
			if _, err := Install(context.Background(), request(t, newRel, nil, state)); !errors.Is(err, ErrHealthCheck) {
				t.Fatalf("install with failing health check: %v", err)
			}
			if got := readFile(t, target); got != "orig" {
				t.Fatalf("target %q after rollback, want the original", got)
			}
		})
	}
}

func TestFileRefusals(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name   string
		target string
		state  string
		want   string
	}{
		{"relative target", "bin/app", dir, "not an absolute path"},
		{"directory target", dir, dir, "is a directory"},
		{"missing state dir", filepath.Join(dir, "app"), filepath.Join(dir, "nope"), "state directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rel := release(t, dir, 1, "1.0", []byte("new"), manifest.Install{Installer: "file", Target: tc.target})
			_, err := Install(context.Background(), request(t, rel, nil, tc.state))
			if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, ErrHealthCheck) {
				t.Fatalf("Install: %v, want an error containing %q", err, tc.want)
			}
			asError(t, err)
		})
	}
}

func TestFileOriginalSymlink(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks need privileges on Windows")
	}
	dir, state := t.TempDir(), t.TempDir()
	target := filepath.Join(dir, "app")
	if err := os.Symlink("elsewhere", target); err != nil {
		t.Fatal(err)
	}
	in := manifest.Install{Installer: "file", Target: target, HealthCheck: []string{lookPath(t, "false")}}
	rel := release(t, dir, 1, "1.0", []byte("new"), in)
	if _, err := Install(context.Background(), request(t, rel, nil, state)); !errors.Is(err, ErrHealthCheck) {
		t.Fatalf("Install: %v, want a health check failure", err)
	}
	if link, err := os.Readlink(target); err != nil || link != "elsewhere" {
		t.Fatalf("target after rollback: link %q, %v; want the original symlink", link, err)
	}
}
