package installers

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/fleetcast/fleetcast/manifest"
)

func skipOnWindows(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the archive installer is not supported on Windows")
	}
}

// goodEntries is a small release tree: directories, an executable, a
// symlink inside, a hard link.
func goodEntries(version string) []tarEntry {
	return []tarEntry{
		{name: "./", typ: tar.TypeDir},
		{name: "./bin/", typ: tar.TypeDir},
		{name: "./bin/app", body: "app " + version, mode: 0o755},
		{name: "./lib/libapp.so.1", body: "lib " + version},
		{name: "./lib/libapp.so", typ: tar.TypeSymlink, link: "libapp.so.1"},
		{name: "./bin/lib", typ: tar.TypeSymlink, link: "../lib"},
		{name: "./bin/app-hardlink", typ: tar.TypeLink, link: "bin/app"},
		{name: "./etc/ro/", typ: tar.TypeDir, mode: 0o555},
	}
}

// archiveSetup is a target directory and a way to make releases for it.
type archiveSetup struct {
	t      *testing.T
	dir    string
	target string
	state  string
}

func newArchiveSetup(t *testing.T) *archiveSetup {
	skipOnWindows(t)
	dir := t.TempDir()
	cleanupTree(t, dir)
	return &archiveSetup{t: t, dir: dir, target: filepath.Join(dir, "opt", "app"), state: t.TempDir()}
}

// release makes release seq with version v from the archive data.
func (s *archiveSetup) release(seq uint64, v string, data []byte) Release {
	return release(s.t, s.dir, seq, v, data, manifest.Install{Installer: "archive", Target: s.target})
}

// install runs Install for newRel after prev.
func (s *archiveSetup) install(newRel Release, prev *Release, keep int) error {
	req := request(s.t, newRel, prev, s.state)
	req.KeepReleases = keep
	_, err := Install(context.Background(), req)
	return err
}

// current returns where TARGET/current points, or "" if absent.
func (s *archiveSetup) current() string {
	link, err := os.Readlink(filepath.Join(s.target, currentLink))
	if err != nil {
		return ""
	}
	return link
}

// record changes the installer's state as an interrupted run would have.
func (s *archiveSetup) record(change func(*archiveState)) {
	s.t.Helper()
	st, err := loadArchiveState(s.state, filepath.Clean(s.target))
	if err != nil {
		s.t.Fatal(err)
	}
	change(st)
	if err := st.save(s.state); err != nil {
		s.t.Fatal(err)
	}
}

func (s *archiveSetup) releases() []string {
	return listDir(s.t, filepath.Join(s.target, releasesDir))
}

func TestArchiveInstall(t *testing.T) {
	formats := []struct {
		name string
		make func(testing.TB, []tarEntry) []byte
	}{
		{"tar.gz", makeTarGz},
		{"tar", makeTar},
		{"zip", makeZip},
	}
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			s := newArchiveSetup(t)
			entries := goodEntries("1.0")
			if f.name == "zip" { // zip has no hard links
				entries = slices.DeleteFunc(entries, func(e tarEntry) bool { return e.typ == tar.TypeLink })
			}
			if err := s.install(s.release(1, "1.0", f.make(t, entries)), nil, 0); err != nil {
				t.Fatal(err)
			}
			if got := s.current(); got != "releases/1.0" {
				t.Fatalf("current -> %q, want releases/1.0", got)
			}
			cur := filepath.Join(s.target, currentLink)
			checks := map[string]string{"bin/app": "app 1.0", "lib/libapp.so": "lib 1.0", "bin/lib/libapp.so.1": "lib 1.0"}
			if f.name != "zip" {
				checks["bin/app-hardlink"] = "app 1.0"
			}
			for p, want := range checks {
				if got := readFile(t, filepath.Join(cur, p)); got != want {
					t.Errorf("%s holds %q, want %q", p, got, want)
				}
			}
			modes := map[string]fs.FileMode{"bin/app": 0o755, "lib/libapp.so.1": 0o644, "etc/ro": 0o555, ".": 0o755}
			for p, want := range modes {
				if fi, err := os.Stat(filepath.Join(cur, p)); err != nil {
					t.Error(err)
				} else if fi.Mode().Perm() != want {
					t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
				}
			}
		})
	}
}

func TestArchiveSwitchAndKeep(t *testing.T) {
	tests := []struct {
		name     string
		keep     int
		installs int
		prevOf   func(i int) int // index of the previous release for install i (-1: none)
		want     []string
	}{
		{"keep default 3", 0, 5, func(i int) int { return i - 1 }, []string{"1.2", "1.3", "1.4"}},
		{"keep 1 still keeps previous", 1, 4, func(i int) int { return i - 1 }, []string{"1.2", "1.3"}},
		{"keep 2 plus an old previous", 2, 5, func(i int) int { return min(i-1, 0) }, []string{"1.0", "1.3", "1.4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newArchiveSetup(t)
			var rels []Release
			for i := range tc.installs {
				v := fmt.Sprintf("1.%d", i)
				rels = append(rels, s.release(uint64(i+1), v, makeTarGz(t, goodEntries(v))))
				var prev *Release
				if p := tc.prevOf(i); p >= 0 && i > 0 {
					prev = &rels[p]
				}
				if err := s.install(rels[i], prev, tc.keep); err != nil {
					t.Fatalf("install %s: %v", v, err)
				}
				if got := readFile(t, filepath.Join(s.target, currentLink, "bin", "app")); got != "app "+v {
					t.Fatalf("after installing %s, current/bin/app holds %q", v, got)
				}
			}
			if got := s.releases(); !slices.Equal(got, tc.want) {
				t.Errorf("releases %v, want %v", got, tc.want)
			}
		})
	}
}

func TestArchiveRollback(t *testing.T) {
	fail := []string{lookPath(t, "sh"), "-c", "exit 1"}
	tests := []struct {
		name        string
		prev        bool
		removePrev  bool // releases/<previous> was removed
		wantCurrent string
		wantRels    []string
	}{
		{"to previous", true, false, "releases/1.0", []string{"1.0"}},
		{"to previous unpacked again", true, true, "releases/1.0", []string{"1.0"}},
		{"no previous", false, false, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newArchiveSetup(t)
			old := s.release(1, "1.0", makeZip(t, goodEntries("1.0")[:4]))
			var prev *Release
			if tc.prev {
				if err := s.install(old, nil, 0); err != nil {
					t.Fatal(err)
				}
				prev = &old
			}
			if tc.removePrev {
				removeTree(filepath.Join(s.target, releasesDir, "1.0"))
			}
			newRel := s.release(2, "2.0", makeTarGz(t, goodEntries("2.0")))
			newRel.Install.HealthCheck = fail
			err := s.install(newRel, prev, 0)
			if !errors.Is(err, ErrHealthCheck) || !asError(t, err).RolledBack {
				t.Fatalf("Install: %v; want a rolled back health check failure", err)
			}
			if got := s.current(); got != tc.wantCurrent {
				t.Errorf("current -> %q, want %q", got, tc.wantCurrent)
			}
			if got := s.releases(); !slices.Equal(got, tc.wantRels) {
				t.Errorf("releases %v, want %v", got, tc.wantRels)
			}
			if tc.prev {
				if got := readFile(t, filepath.Join(s.target, currentLink, "bin", "app")); got != "app 1.0" {
					t.Errorf("current/bin/app holds %q after rollback", got)
				}
			}
		})
	}
}

// TestArchiveRerun replays states that interrupted runs leave.
func TestArchiveRerun(t *testing.T) {
	tests := []struct {
		name string
		// setup changes the state after 1.0 was installed, before installing 2.0
		setup       func(t *testing.T, s *archiveSetup)
		wantMarker  bool // releases/2.0/marker survives: 2.0 was not unpacked again
		wantCurrent string
	}{
		{"killed while unpacking", func(t *testing.T, s *archiveSetup) {
			s.record(func(st *archiveState) { st.Staging = append(st.Staging, ".2.0.tmp-ABC234") })
			writeFile(t, filepath.Join(s.target, releasesDir, ".2.0.tmp-ABC234", "bin", "app"), []byte("partial"), 0o644)
			os.Symlink("releases/2.0", filepath.Join(s.target, currentTmpPrefix+"abc"))
		}, false, "releases/2.0"},
		{"killed after recording, before renaming", func(t *testing.T, s *archiveSetup) {
			s.record(func(st *archiveState) {
				st.Staging = append(st.Staging, ".2.0.tmp-XYZ234")
				st.addRelease("2.0")
			})
			writeFile(t, filepath.Join(s.target, releasesDir, ".2.0.tmp-XYZ234", "bin", "app"), []byte("whole"), 0o644)
		}, false, "releases/2.0"},
		{"killed before switching", func(t *testing.T, s *archiveSetup) {
			s.record(func(st *archiveState) { st.addRelease("2.0") })
			writeFile(t, filepath.Join(s.target, releasesDir, "2.0", "marker"), nil, 0o644)
		}, false, "releases/2.0"},
		{"killed after switching", func(t *testing.T, s *archiveSetup) {
			s.record(func(st *archiveState) { st.addRelease("2.0") })
			writeFile(t, filepath.Join(s.target, releasesDir, "2.0", "marker"), nil, 0o644)
			os.Remove(filepath.Join(s.target, currentLink))
			os.Symlink("releases/2.0", filepath.Join(s.target, currentLink))
		}, true, "releases/2.0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newArchiveSetup(t)
			old := s.release(1, "1.0", makeTarGz(t, goodEntries("1.0")))
			if err := s.install(old, nil, 0); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, s)
			if err := s.install(s.release(2, "2.0", makeTarGz(t, goodEntries("2.0"))), &old, 0); err != nil {
				t.Fatal(err)
			}
			if got := s.current(); got != tc.wantCurrent {
				t.Errorf("current -> %q, want %q", got, tc.wantCurrent)
			}
			if got := exists(filepath.Join(s.target, releasesDir, "2.0", "marker")); got != tc.wantMarker {
				t.Errorf("marker exists %v, want %v", got, tc.wantMarker)
			}
			if got := s.releases(); !slices.Equal(got, []string{"1.0", "2.0"}) {
				t.Errorf("releases %v, want [1.0 2.0] (leftovers removed)", got)
			}
			if got := listDir(t, s.target); !slices.Equal(got, []string{currentLink, releasesDir}) {
				t.Errorf("target holds %v, want [current releases]", got)
			}
		})
	}
}

func TestArchiveRefusesForeignCurrent(t *testing.T) {
	s := newArchiveSetup(t)
	writeFile(t, filepath.Join(s.target, currentLink, "keep"), []byte("mine"), 0o644)
	err := s.install(s.release(1, "1.0", makeTarGz(t, goodEntries("1.0"))), nil, 0)
	if !errors.Is(err, ErrUnsafeTarget) || !strings.Contains(err.Error(), "not a symbolic link") {
		t.Fatalf("Install: %v, want a refusal to replace a directory", err)
	}
	if got := readFile(t, filepath.Join(s.target, currentLink, "keep")); got != "mine" {
		t.Fatalf("current/keep holds %q", got)
	}
}

// TestArchiveMalicious installs 1.0, then an archive that must be refused:
// current stays at 1.0, no 2.0 or temporary directory appears, nothing is
// written outside.
func TestArchiveMalicious(t *testing.T) {
	small := extractLimits{entries: 16, size: 1 << 20}
	many := make([]tarEntry, 17)
	for i := range many {
		many[i] = tarEntry{name: fmt.Sprintf("f%d", i), body: "x"}
	}
	fill := make([]tarEntry, 3)
	for i := range fill {
		fill[i] = tarEntry{name: fmt.Sprintf("f%d", i), size: 400 << 10}
	}
	tests := []struct {
		name    string
		archive func(t *testing.T, s *archiveSetup) []byte
		unsafe  bool // wraps ErrUnsafeArchive
	}{
		{"dotdot", tarGz(tarEntry{name: "../x", body: "evil"}), true},
		{"dotdot inside", tarGz(tarEntry{name: "a/../../x", body: "evil"}), true},
		{"absolute", func(t *testing.T, s *archiveSetup) []byte {
			return makeTarGz(t, []tarEntry{{name: filepath.ToSlash(filepath.Join(s.dir, "abs")), body: "evil"}})
		}, true},
		{"backslash", tarGz(tarEntry{name: `..\x`, body: "evil"}), true},
		{"too deep", tarGz(tarEntry{name: strings.Repeat("d/", MaxArchiveDepth) + "f", body: "deep"}), true},
		{"name too long", tarGz(tarEntry{name: strings.Repeat("n", MaxArchivePathLen+1), body: "long"}), true},
		{"symlink to /etc", tarGz(tarEntry{name: "etc", typ: tar.TypeSymlink, link: "/etc"}), true},
		{"symlink up", tarGz(tarEntry{name: "a/up", typ: tar.TypeSymlink, link: "../../x"}), true},
		{"symlink chain", tarGz(
			tarEntry{name: "a", typ: tar.TypeSymlink, link: "."},
			tarEntry{name: "b", typ: tar.TypeSymlink, link: "a/.."}), true},
		{"write through symlink chain", tarGz(
			tarEntry{name: "a", typ: tar.TypeSymlink, link: "."},
			tarEntry{name: "b", typ: tar.TypeSymlink, link: "a/.."},
			tarEntry{name: "b/x", body: "evil"}), true},
		{"symlink loop", tarGz(
			tarEntry{name: "a", typ: tar.TypeSymlink, link: "b"},
			tarEntry{name: "b", typ: tar.TypeSymlink, link: "a"}), true},
		{"hardlink up", tarGz(tarEntry{name: "h", typ: tar.TypeLink, link: "../x"}), true},
		{"hardlink absolute", tarGz(tarEntry{name: "h", typ: tar.TypeLink, link: "/etc/passwd"}), true},
		{"hardlink through symlink", tarGz(
			tarEntry{name: "a", typ: tar.TypeSymlink, link: "."},
			tarEntry{name: "s", typ: tar.TypeSymlink, link: "a/.."},
			tarEntry{name: "h", typ: tar.TypeLink, link: "s/x"}), true},
		{"char device", tarGz(tarEntry{name: "null", typ: tar.TypeChar}), true},
		{"fifo", tarGz(tarEntry{name: "fifo", typ: tar.TypeFifo}), true},
		{"duplicate", tarGz(tarEntry{name: "f", body: "1"}, tarEntry{name: "f", body: "2"}), true},
		{"file over symlink", tarGz(
			tarEntry{name: "l", typ: tar.TypeSymlink, link: "f"},
			tarEntry{name: "l", body: "2"}), true},
		{"too many entries", tarGz(many...), true},
		{"gzip bomb", tarGz(tarEntry{name: "zeros", size: 4 << 20}), true},
		{"total too large", tarGz(fill...), true},
		{"zip dotdot", zipOf(tarEntry{name: "../x", body: "evil"}), true},
		{"zip symlink to /etc", zipOf(tarEntry{name: "etc", typ: tar.TypeSymlink, link: "/etc"}), true},
		{"zip char device", zipOf(tarEntry{name: "null", typ: tar.TypeChar}), true},
		{"zip bomb", zipOf(tarEntry{name: "zeros", size: 4 << 20}), true},
		{"zip with a lying size", func(t *testing.T, _ *archiveSetup) []byte { return lyingZip(t, 4<<20) }, false},
		{"zip too many entries", zipOf(many...), true},
		{"not an archive", func(*testing.T, *archiveSetup) []byte { return []byte("#!/bin/sh\necho hi\n") }, false},
		{"truncated", func(t *testing.T, s *archiveSetup) []byte {
			b := makeTarGz(t, goodEntries("2.0"))
			return b[:len(b)/2]
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newArchiveSetup(t)
			old := s.release(1, "1.0", makeTarGz(t, goodEntries("1.0")))
			if err := s.install(old, nil, 0); err != nil {
				t.Fatal(err)
			}
			before := treeOf(t, s.dir)
			bad := s.release(2, "2.0", tc.archive(t, s))
			req := request(t, bad, &old, s.state)
			req.limits = small
			_, err := Install(context.Background(), req)
			if err == nil || errors.Is(err, ErrHealthCheck) || errors.Is(err, ErrUnsafeArchive) != tc.unsafe {
				t.Fatalf("Install: %v; want an install error (unsafe: %v)", err, tc.unsafe)
			}
			if ie := asError(t, err); ie.Step != stepInstall || ie.RolledBack {
				t.Errorf("error %+v, want step install, not rolled back", ie)
			}
			if got := s.current(); got != "releases/1.0" {
				t.Errorf("current -> %q, want releases/1.0", got)
			}
			after := treeOf(t, s.dir)
			delete(after, filepath.Join("artifacts", "2.0"))
			if !mapsEqual(before, after) {
				t.Errorf("tree changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

func tarGz(entries ...tarEntry) func(*testing.T, *archiveSetup) []byte {
	return func(t *testing.T, _ *archiveSetup) []byte { return makeTarGz(t, entries) }
}

func zipOf(entries ...tarEntry) func(*testing.T, *archiveSetup) []byte {
	return func(t *testing.T, _ *archiveSetup) []byte { return makeZip(t, entries) }
}

// treeOf maps every path under dir to its type and, for symlinks, target.
func treeOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	tree := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		desc := d.Type().String()
		if d.Type()&fs.ModeSymlink != 0 {
			link, _ := os.Readlink(p)
			desc += " -> " + link
		}
		tree[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestArchiveSameVersionRefused(t *testing.T) {
	s := newArchiveSetup(t)
	old := s.release(1, "1.0", makeTarGz(t, goodEntries("1.0")))
	if err := s.install(old, nil, 0); err != nil {
		t.Fatal(err)
	}
	again := s.release(2, "1.0", makeTarGz(t, goodEntries("1.0b")))
	err := s.install(again, &old, 0)
	if err == nil || !strings.Contains(err.Error(), "same version") {
		t.Fatalf("Install: %v, want a refusal of a reused version", err)
	}
}

// lyingZip returns a zip whose one entry declares 10 bytes but inflates to n.
func lyingZip(t *testing.T, n int) []byte {
	var data bytes.Buffer
	fw, _ := flate.NewWriter(&data, flate.BestSpeed)
	fw.Write(make([]byte, n))
	fw.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "zeros", Method: zip.Deflate,
		CRC32: crc32.ChecksumIEEE(make([]byte, n)), CompressedSize64: uint64(data.Len()), UncompressedSize64: 10})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data.Bytes())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCapReader(t *testing.T) {
	tests := []struct {
		n, limit int
		wantErr  bool
	}{
		{10, 10, false},
		{9, 10, false},
		{11, 10, true},
		{1 << 20, 1000, true},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d of %d", tc.n, tc.limit), func(t *testing.T) {
			c := &capReader{r: bytes.NewReader(make([]byte, tc.n)), left: int64(tc.limit), limit: int64(tc.limit)}
			got, err := io.ReadAll(c)
			if tc.wantErr != errors.Is(err, ErrUnsafeArchive) {
				t.Fatalf("read %d bytes, %v; want error %v", len(got), err, tc.wantErr)
			}
			if !tc.wantErr && len(got) != tc.n {
				t.Fatalf("read %d bytes, want %d", len(got), tc.n)
			}
		})
	}
}
