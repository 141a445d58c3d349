//go:build unix

package installers

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"

	"github.com/fleetcast/fleetcast/manifest"
)

// TestArchiveSparseEntryHoles: a 10 KiB archive declaring a 1 GiB sparse
// file unpacks to a 1 GiB file that occupies almost nothing (holes are
// written as holes, not zeros), and one past the unpacked-size limit is
// refused.
func TestArchiveSparseEntryHoles(t *testing.T) {
	const logical = 1 << 30
	archive := gnuSparseTar(t, "disk.img", logical, []byte("header"))
	if len(archive) > 10<<10 {
		t.Fatalf("test archive is %d bytes", len(archive))
	}
	s := newArchiveSetup(t)
	if err := s.install(s.release(1, "1.0", archive), nil, 0); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(s.target, currentLink, "disk.img")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != logical {
		t.Fatalf("size %d, want %d", fi.Size(), logical)
	}
	if used := fi.Sys().(*syscall.Stat_t).Blocks * 512; used > 1<<20 {
		t.Fatalf("the sparse entry occupies %d bytes on disk: written densely", used)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := make([]byte, 8)
	if _, err := f.ReadAt(head, 0); err != nil || string(head) != "header\x00\x00" {
		t.Fatalf("file starts with %q, %v", head, err)
	}

	req := request(t, s.release(2, "2.0", archive), nil, s.state)
	req.limits = extractLimits{size: logical / 2}
	if _, err := Install(context.Background(), req); !errors.Is(err, ErrUnsafeArchive) {
		t.Fatalf("Install past the unpacked-size limit: %v; want ErrUnsafeArchive", err)
	}
}

// TestArchiveNoSpace: an unpack that passes the space it may use fails
// with ErrNoSpace, leaves no staging directory and does not switch.
func TestArchiveNoSpace(t *testing.T) {
	s := newArchiveSetup(t)
	if err := s.install(s.release(1, "1.0", makeTarGz(t, goodEntries("1.0"))), nil, 0); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 3<<20)
	rand.Read(big)
	rel := s.release(2, "2.0", makeTar(t, []tarEntry{{name: "a", body: string(big[:1<<20])}, {name: "b", body: string(big[1<<20:])}}))
	req := request(t, rel, &Release{}, s.state)
	req.Previous = nil
	req.limits = extractLimits{space: 2 << 20}
	_, err := Install(context.Background(), req)
	if !errors.Is(err, ErrNoSpace) || errors.Is(err, ErrUnsafeArchive) {
		t.Fatalf("Install: %v; want ErrNoSpace", err)
	}
	if got := s.current(); got != "releases/1.0" {
		t.Fatalf("current -> %q", got)
	}
	if got := s.releases(); !slices.Equal(got, []string{"1.0"}) {
		t.Fatalf("releases %v after a failed unpack", got)
	}
}

// TestArchiveFullFileSystem unpacks onto a real 8 MiB tmpfs: an archive of
// 16 MiB of data fails with ErrNoSpace before the file system is full (the
// free-space bound, less the reserve), leaves nothing behind, and a later
// release that fits installs.
func TestArchiveFullFileSystem(t *testing.T) {
	mnt := tmpfs(t, "8m")
	target := filepath.Join(mnt, "app")
	big := make([]byte, 16<<20)
	rand.Read(big)
	art := t.TempDir()
	in := manifest.Install{Installer: "archive", Target: target}
	state := t.TempDir()
	req := request(t, release(t, art, 1, "1.0", makeTarGz(t, []tarEntry{{name: "big", body: string(big)}}), in), nil, state)
	_, err := Install(context.Background(), req)
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Install: %v; want ErrNoSpace", err)
	}
	if got := listDir(t, filepath.Join(target, releasesDir)); len(got) != 0 {
		t.Fatalf("releases holds %v after a failed unpack", got)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	if free := int64(st.Bavail) * int64(st.Bsize); free < 7<<20 {
		t.Fatalf("%d bytes free after the failed unpack: it was not cleaned up", free)
	}
	req = request(t, release(t, art, 2, "2.0", makeTarGz(t, goodEntries("2.0")), in), nil, state)
	if _, err := Install(context.Background(), req); err != nil {
		t.Fatal(err)
	}
}

// tmpfs mounts a tmpfs of the given size on a new directory and unmounts
// it at the end of the test. It needs root: it skips without, unless
// FLEETCAST_REQUIRE_NETNS=1 (as in CI) makes that a failure.
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if ok, _ := strconv.ParseBool(os.Getenv("FLEETCAST_REQUIRE_NETNS")); ok {
			t.Fatal("mounting a tmpfs needs root, and FLEETCAST_REQUIRE_NETNS=1 forbids skipping")
		}
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}
