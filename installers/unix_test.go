//go:build unix

package installers

import (
	"archive/tar"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/fleetcast/fleetcast/manifest"
)

// TestFileKeepsOwner replaces a file owned by another user: the new file
// gets its owner and group (as root), and the setuid bit survives the chown.
func TestFileKeepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root can give files away")
	}
	dir := t.TempDir()
	target := writeFile(t, filepath.Join(dir, "app"), []byte("orig"), 0o755)
	if err := os.Chown(target, 1234, 5678); err != nil {
		t.Fatal(err)
	}
	rel := release(t, dir, 1, "1.0", []byte("new"), manifest.Install{Installer: "file", Target: target, Mode: "04750"})
	if _, err := Install(context.Background(), request(t, rel, nil, t.TempDir())); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 1234 || st.Gid != 5678 || fi.Mode()&(fs.ModePerm|fs.ModeSetuid) != 0o750|fs.ModeSetuid {
		t.Fatalf("new target: owner %d:%d mode %v; want 1234:5678 and setuid 0750", st.Uid, st.Gid, fi.Mode())
	}
}

// TestExtractIgnoresUmask unpacks a zip without directory entries under a
// restrictive umask: implicit directories are 0755, files keep their modes.
func TestExtractIgnoresUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	art := writeFile(t, filepath.Join(dir, "a.zip"), makeZip(t, []tarEntry{
		{name: "bin/app", body: "x", mode: 0o755},
		{name: "share/doc/README", body: "y", mode: 0o644},
		{name: "etc/", typ: tar.TypeDir, mode: 0o750},
	}), 0o644)
	root := filepath.Join(dir, "root")
	os.Mkdir(root, 0o755)
	if err := extractArchive(context.Background(), art, root, extractLimits{}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]fs.FileMode{"bin": 0o755, "share": 0o755, "share/doc": 0o755,
		"bin/app": 0o755, "share/doc/README": 0o644, "etc": 0o750} {
		if fi, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Error(err)
		} else if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
}
