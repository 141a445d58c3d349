//go:build unix

package installers

import (
	"archive/tar"
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fleetcast/fleetcast/manifest"
)

// hostileArchives are archives that try to reach outside their release
// directory in every way the formats allow, aimed at the sandbox's victims
// (whose absolute paths they know), plus the fuzz seeds.
func hostileArchives(t testing.TB, s *sandbox) map[string][]byte {
	up := strings.Repeat("../", 6) + "outside" // from a release directory below allowed/app
	passwd := filepath.ToSlash(filepath.Join(s.outside, "passwd"))
	m := map[string][]byte{
		"dotdot to victim":          makeTarGz(t, []tarEntry{{name: up + "/ssh/config", body: "evil"}}),
		"absolute victim":           makeTar(t, []tarEntry{{name: passwd, body: "evil"}}),
		"symlink to victim dir":     makeTar(t, []tarEntry{{name: "d", typ: tar.TypeSymlink, link: s.outside}, {name: "d/ssh/config", body: "evil"}}),
		"relative symlink out":      makeTar(t, []tarEntry{{name: "d", typ: tar.TypeSymlink, link: up}, {name: "d/new", body: "evil"}}),
		"hardlink to victim":        makeTar(t, []tarEntry{{name: "h", typ: tar.TypeLink, link: passwd}}),
		"hardlink up to victim":     makeTar(t, []tarEntry{{name: "h", typ: tar.TypeLink, link: up + "/passwd"}}),
		"hardlink via symlink":      makeTar(t, []tarEntry{{name: "d", typ: tar.TypeSymlink, link: up}, {name: "h", typ: tar.TypeLink, link: "d/passwd"}}),
		"symlink then dir over it":  makeTar(t, []tarEntry{{name: "d", typ: tar.TypeSymlink, link: up}, {name: "d/", typ: tar.TypeDir}, {name: "d/x", body: "evil"}}),
		"nested symlink chain out":  makeTar(t, []tarEntry{{name: "a/b", typ: tar.TypeSymlink, link: "../.."}, {name: "a/b/c", typ: tar.TypeSymlink, link: up}, {name: "a/b/c/x", body: "evil"}}),
		"zip symlink to victim dir": makeZip(t, []tarEntry{{name: "d", typ: tar.TypeSymlink, link: s.outside}, {name: "d/x", body: "evil"}}),
		"zip dotdot to victim":      makeZip(t, []tarEntry{{name: up + "/passwd", body: "evil"}}),
		"sparse past the limit":     gnuSparseTar(t, "big", 1<<40, []byte("x")),
		"sparse within the limit":   gnuSparseTar(t, "img", 1<<30, []byte("x")),
	}
	maps.Copy(m, fuzzSeeds(t))
	return m
}

// TestHostileArchivesOnTmpfs runs every hostile archive through the real
// archive installer on a tmpfs that also holds the victims, and compares a
// listing of everything outside the target (types, modes, link counts,
// sizes, modification times, link targets) before and after. Whatever the
// installer decides, nothing outside its target may change, and current
// never leaves the good release for a refused one.
func TestHostileArchivesOnTmpfs(t *testing.T) {
	mnt := tmpfs(t, "64m")
	s := newSandbox(t, mnt)
	cleanupTree(t, s.allowed)
	target := filepath.Join(s.allowed, "app")
	in := manifest.Install{Installer: "archive", Target: target}
	art := t.TempDir()
	good := release(t, art, 1, "1.0", makeTarGz(t, goodEntries("1.0")), in)
	if err := s.install(good, nil, 2); err != nil {
		t.Fatal(err)
	}
	archives := hostileArchives(t, s)
	for _, name := range slices.Sorted(maps.Keys(archives)) {
		t.Run(name, func(t *testing.T) {
			before := snapshot(t, mnt, target)
			rel := release(t, art, 2, "2.0", archives[name], in)
			err := s.install(rel, &good, 2)
			unchanged(t, before, snapshot(t, mnt, target))
			cur := readLink(t, filepath.Join(target, currentLink))
			switch {
			case err == nil && cur != "releases/2.0":
				t.Errorf("installed, but current -> %q", cur)
			case err != nil && cur != "releases/1.0":
				t.Errorf("refused (%v), but current -> %q", err, cur)
			}
			// Back to 1.0 for the next archive, as a rollback would.
			if err == nil {
				if err := s.install(good, &rel, 2); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// FuzzInstallArchive installs arbitrary bytes as an archive release with
// the real installer over a good one, in a sandbox whose victims lie
// beside the allowed target: nothing outside the target may change.
//
// Its seeds are testdata/fuzz/FuzzInstallArchive (see TestWriteFuzzCorpus).
func FuzzInstallArchive(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newSandbox(t, t.TempDir())
		cleanupTree(t, s.dir)
		target := filepath.Join(s.allowed, "app")
		in := manifest.Install{Installer: "archive", Target: target}
		art := t.TempDir()
		good := release(t, art, 1, "1.0", makeTar(t, goodEntries("1.0")[:4]), in)
		if err := s.installWith(good, nil, fuzzLimits); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, s.dir, target, art)
		err := s.installWith(release(t, art, 2, "2.0", data, in), &good, fuzzLimits)
		unchanged(t, before, snapshot(t, s.dir, target, art))
		if cur := readLink(t, filepath.Join(target, currentLink)); err != nil && cur != "releases/1.0" {
			t.Fatalf("refused (%v), but current -> %q", err, cur)
		}
	})
}

// installWith runs the archive installer with allowed as the only prefix
// and lim as the archive limits.
func (s *sandbox) installWith(rel Release, prev *Release, lim extractLimits) error {
	req := request(s.t, rel, prev, s.state)
	req.AllowedTargets = []string{s.allowed}
	req.limits = lim
	_, err := Install(context.Background(), req)
	return err
}

// readLink returns where the symlink p points, or "" if it is not one.
func readLink(t *testing.T, p string) string {
	t.Helper()
	link, err := os.Readlink(p)
	if err != nil {
		return ""
	}
	return link
}
