//go:build unix

package installers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/internal/treetest"
	"github.com/fleetcast/fleetcast/manifest"
)

// sandbox is a directory holding an allowed target prefix ("allowed") and,
// beside it, victims an attacker would like an installer to touch
// ("outside"): directories named like versions, two days old, as in the
// attack review (ssh, systemd, cron.d, apt, ssl), a file with a second hard
// link, and a symlink.
type sandbox struct {
	t       *testing.T
	dir     string
	allowed string
	outside string
	state   string
}

func newSandbox(t *testing.T, dir string) *sandbox {
	t.Helper()
	s := &sandbox{t: t, dir: dir, allowed: filepath.Join(dir, "allowed"), outside: filepath.Join(dir, "outside"), state: t.TempDir()}
	old := time.Now().Add(-48 * time.Hour)
	for _, name := range []string{"ssh", "systemd", "cron.d", "apt", "ssl"} {
		p := writeFile(t, filepath.Join(s.outside, name, "config"), []byte(name), 0o644)
		os.Chtimes(p, old, old)
		os.Chtimes(filepath.Dir(p), old, old)
	}
	passwd := writeFile(t, filepath.Join(s.outside, "passwd"), []byte("root:x:0:0"), 0o644)
	if err := os.Link(passwd, filepath.Join(s.outside, "passwd.bak")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("passwd", filepath.Join(s.outside, "passwd.link")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(s.allowed, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(s.outside, old, old)
	return s
}

// snapshot lists every path below dir except the skipped subtrees
// (treetest.Listing).
func snapshot(t *testing.T, dir string, skip ...string) map[string]string {
	t.Helper()
	m, err := treetest.Listing(dir, skip...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// unchanged fails the test if the listing changed.
func unchanged(t *testing.T, before, after map[string]string) {
	t.Helper()
	if d := treetest.Diff(before, after); d != "" {
		t.Errorf("outside the target:\n%s", d)
	}
}

// TestArchivePlantedPaths plants links and files where the archive
// installer keeps its own, in every position, and checks that the install
// is refused (with ErrUnsafeTarget) or succeeds without following them, and
// that nothing outside the allowed target changed in either case.
func TestArchivePlantedPaths(t *testing.T) {
	tests := []struct {
		name string
		// target is the target below allowed; plant changes the sandbox
		// after release 1.0 was installed there (if installFirst).
		target       string
		installFirst bool
		plant        func(t *testing.T, s *sandbox, target string)
		wantRefused  bool
		check        func(t *testing.T, target string) // optional, after the install
	}{
		{"releases is a link out", "app", false, func(t *testing.T, s *sandbox, target string) {
			mkdir(t, target)
			symlink(t, s.outside, filepath.Join(target, releasesDir))
		}, true, nil},
		{"releases is a link out after an install", "app", true, func(t *testing.T, s *sandbox, target string) {
			os.Rename(filepath.Join(target, releasesDir), filepath.Join(target, "old-releases"))
			symlink(t, s.outside, filepath.Join(target, releasesDir))
		}, true, nil},
		{"releases is a relative link out", "app", false, func(t *testing.T, s *sandbox, target string) {
			mkdir(t, target)
			symlink(t, "../../outside", filepath.Join(target, releasesDir))
		}, true, nil},
		{"releases is a link inside the target", "app", false, func(t *testing.T, s *sandbox, target string) {
			mkdir(t, filepath.Join(target, "elsewhere"))
			symlink(t, "elsewhere", filepath.Join(target, releasesDir))
		}, true, nil},
		{"releases is a file", "app", false, func(t *testing.T, s *sandbox, target string) {
			writeFile(t, filepath.Join(target, releasesDir), []byte("x"), 0o644)
		}, true, nil},
		{"current is a link out", "app", true, func(t *testing.T, s *sandbox, target string) {
			os.Remove(filepath.Join(target, currentLink))
			symlink(t, s.outside, filepath.Join(target, currentLink))
		}, true, nil},
		{"current is a link up through releases", "app", true, func(t *testing.T, s *sandbox, target string) {
			os.Remove(filepath.Join(target, currentLink))
			symlink(t, "releases/../../../outside", filepath.Join(target, currentLink))
		}, true, nil},
		{"current is a directory", "app", false, func(t *testing.T, s *sandbox, target string) {
			mkdir(t, filepath.Join(target, currentLink))
		}, true, nil},
		{"target is a link out", "app", false, func(t *testing.T, s *sandbox, target string) {
			symlink(t, s.outside, target)
		}, true, nil},
		{"target's parent is a link out", "sub/app", false, func(t *testing.T, s *sandbox, target string) {
			symlink(t, s.outside, filepath.Dir(target))
		}, true, nil},
		{"target's parent swapped for a link out after an install", "sub/app", true, func(t *testing.T, s *sandbox, target string) {
			os.Rename(filepath.Dir(target), filepath.Join(s.allowed, "moved"))
			symlink(t, s.outside, filepath.Dir(target))
		}, true, nil},
		{"target's parent is a file", "sub/app", false, func(t *testing.T, s *sandbox, target string) {
			writeFile(t, filepath.Dir(target), []byte("x"), 0o644)
		}, true, nil},
		{"new release's directory is a planted link out", "app", true, func(t *testing.T, s *sandbox, target string) {
			symlink(t, s.outside, filepath.Join(target, releasesDir, "2.0"))
		}, true, nil},
		{"new release's directory planted", "app", true, func(t *testing.T, s *sandbox, target string) {
			mkdir(t, filepath.Join(target, releasesDir, "2.0", "ssh"))
		}, true, nil},
		{"target's parent is a link inside the allowed target", "sub/app", false, func(t *testing.T, s *sandbox, target string) {
			mkdir(t, filepath.Join(s.allowed, "real"))
			symlink(t, "real", filepath.Dir(target))
		}, false, nil},
		{"version-named directories planted in releases are not pruned", "app", true, func(t *testing.T, s *sandbox, target string) {
			for _, v := range []string{"ssh", "systemd", "0.9"} {
				writeFile(t, filepath.Join(target, releasesDir, v, "keep"), []byte(v), 0o644)
			}
			symlink(t, s.outside, filepath.Join(target, releasesDir, "cron.d"))
		}, false, func(t *testing.T, target string) {
			for _, v := range []string{"ssh", "systemd", "0.9"} {
				if got := readFile(t, filepath.Join(target, releasesDir, v, "keep")); got != v {
					t.Errorf("releases/%s/keep holds %q: a directory fleetcast did not make was pruned", v, got)
				}
			}
			if _, err := os.Lstat(filepath.Join(target, releasesDir, "cron.d")); err != nil {
				t.Errorf("releases/cron.d: %v", err)
			}
		}},
		{"staging-named links and directories planted are left alone", "app", true, func(t *testing.T, s *sandbox, target string) {
			symlink(t, s.outside, filepath.Join(target, releasesDir, ".2.0.tmp-AAAAAAAA"))
			symlink(t, s.outside, filepath.Join(target, currentTmpPrefix+"BBBB"))
			mkdir(t, filepath.Join(target, currentTmpPrefix+"CCCC", "keep"))
		}, false, func(t *testing.T, target string) {
			if _, err := os.Stat(filepath.Join(target, currentTmpPrefix+"CCCC", "keep")); err != nil {
				t.Errorf("a directory fleetcast did not make was removed: %v", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t, t.TempDir())
			cleanupTree(t, s.dir)
			target := filepath.Join(s.allowed, filepath.FromSlash(tc.target))
			in := manifest.Install{Installer: "archive", Target: target}
			art := t.TempDir()
			var prev *Release
			if tc.installFirst {
				r1 := release(t, art, 1, "1.0", makeTarGz(t, goodEntries("1.0")), in)
				if err := s.install(r1, nil, 1); err != nil {
					t.Fatal(err)
				}
				prev = &r1
			}
			tc.plant(t, s, target)
			before := snapshot(t, s.outside)
			err := s.install(release(t, art, 2, "2.0", makeTarGz(t, goodEntries("2.0")), in), prev, 1)
			switch {
			case tc.wantRefused && !errors.Is(err, ErrUnsafeTarget):
				t.Errorf("Install: %v; want a refusal wrapping ErrUnsafeTarget", err)
			case !tc.wantRefused && err != nil:
				t.Errorf("Install: %v; want success", err)
			}
			if err != nil && !strings.Contains(err.Error(), s.allowed) {
				t.Errorf("error %q does not name the path it refused", err)
			}
			unchanged(t, before, snapshot(t, s.outside))
			if tc.check != nil {
				tc.check(t, target)
			}
		})
	}
}

// TestFilePlantedPaths does the same for the file installer.
func TestFilePlantedPaths(t *testing.T) {
	tests := []struct {
		name        string
		target      string // below allowed
		plant       func(t *testing.T, s *sandbox, target string)
		wantRefused bool
		want        string // the target's content afterwards, if not refused
	}{
		{"parent is a link out", "bin/app", func(t *testing.T, s *sandbox, target string) {
			symlink(t, s.outside, filepath.Dir(target))
		}, true, ""},
		{"grandparent is a link out", "a/bin/app", func(t *testing.T, s *sandbox, target string) {
			symlink(t, s.outside, filepath.Dir(filepath.Dir(target)))
		}, true, ""},
		{"parent is a relative link out", "bin/app", func(t *testing.T, s *sandbox, target string) {
			symlink(t, "../outside/ssh", filepath.Dir(target))
		}, true, ""},
		{"parent is a file", "bin/app", func(t *testing.T, s *sandbox, target string) {
			writeFile(t, filepath.Dir(target), []byte("x"), 0o644)
		}, true, ""},
		{"target is a link out: replaced, not followed", "bin/passwd", func(t *testing.T, s *sandbox, target string) {
			mkdir(t, filepath.Dir(target))
			symlink(t, filepath.Join(s.outside, "passwd"), target)
		}, false, "new"},
		{"temporary name planted as a link out and as a directory", "bin/app", func(t *testing.T, s *sandbox, target string) {
			symlink(t, filepath.Join(s.outside, "passwd"), filepath.Join(filepath.Dir(target), ".app"+tempInfix+"AAAA"))
			mkdir(t, filepath.Join(filepath.Dir(target), ".app"+tempInfix+"BBBB", "keep"))
		}, false, "new"},
		{"parent is a link inside the allowed target", "bin/app", func(t *testing.T, s *sandbox, target string) {
			mkdir(t, filepath.Join(s.allowed, "real"))
			symlink(t, "real", filepath.Dir(target))
		}, false, "new"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t, t.TempDir())
			target := filepath.Join(s.allowed, filepath.FromSlash(tc.target))
			tc.plant(t, s, target)
			before := snapshot(t, s.outside)
			rel := release(t, t.TempDir(), 1, "1.0", []byte("new"), manifest.Install{Installer: "file", Target: target})
			req := request(t, rel, nil, s.state)
			req.AllowedTargets = []string{s.allowed}
			_, err := Install(context.Background(), req)
			switch {
			case tc.wantRefused && !errors.Is(err, ErrUnsafeTarget):
				t.Errorf("Install: %v; want a refusal wrapping ErrUnsafeTarget", err)
			case !tc.wantRefused && err != nil:
				t.Errorf("Install: %v; want success", err)
			case !tc.wantRefused:
				if fi, err := os.Lstat(target); err != nil || !fi.Mode().IsRegular() {
					t.Errorf("target: %v, %v; want a regular file", fi, err)
				} else if got := readFile(t, target); got != tc.want {
					t.Errorf("target holds %q, want %q", got, tc.want)
				}
			}
			unchanged(t, before, snapshot(t, s.outside))
		})
	}
}

// TestTargetOutsideAllowed: a target under no allowed prefix, or with no
// prefixes given, is refused before anything is made.
func TestTargetOutsideAllowed(t *testing.T) {
	for _, installer := range []string{"file", "archive"} {
		for _, allowed := range [][]string{nil, {"/nonexistent-allowed"}, {"relative"}} {
			t.Run(fmt.Sprintf("%s %q", installer, allowed), func(t *testing.T) {
				dir := t.TempDir()
				target := filepath.Join(dir, "app")
				rel := release(t, t.TempDir(), 1, "1.0", makeTarGz(t, goodEntries("1.0")), manifest.Install{Installer: installer, Target: target})
				req := request(t, rel, nil, t.TempDir())
				req.AllowedTargets = allowed
				if _, err := Install(context.Background(), req); !errors.Is(err, ErrUnsafeTarget) {
					t.Fatalf("Install: %v; want ErrUnsafeTarget", err)
				}
				if got := listDir(t, dir); len(got) != 0 {
					t.Fatalf("target directory holds %v after a refusal", got)
				}
			})
		}
	}
}

// TestFileTargetIsThePrefix: allowed_targets may name the one file an
// agent may replace.
func TestFileTargetIsThePrefix(t *testing.T) {
	dir := t.TempDir()
	target := writeFile(t, filepath.Join(dir, "tool"), []byte("old"), 0o755)
	rel := release(t, t.TempDir(), 1, "1.0", []byte("new"), manifest.Install{Installer: "file", Target: target})
	req := request(t, rel, nil, t.TempDir())
	req.AllowedTargets = []string{target}
	if _, err := Install(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, target); got != "new" {
		t.Fatalf("target holds %q", got)
	}
}

// install runs the archive installer with allowed as the only prefix.
func (s *sandbox) install(rel Release, prev *Release, keep int) error {
	req := request(s.t, rel, prev, s.state)
	req.AllowedTargets = []string{s.allowed}
	req.KeepReleases = keep
	_, err := Install(context.Background(), req)
	return err
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}
