package installers

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/manifest"
)

// lookPath returns the path of a program the test needs, or skips.
func lookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not found: %v", name, err)
	}
	return p
}

// testLogger logs to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// writeFile writes data to path, creating its directory.
func writeFile(t testing.TB, path string, data []byte, perm fs.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, perm); err != nil {
		t.Fatal(err)
	}
	return path
}

// readFile returns path's content, or "<absent>".
func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "<absent>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// release makes a Release with an artifact holding data in dir.
func release(t testing.TB, dir string, seq uint64, version string, data []byte, in manifest.Install) Release {
	t.Helper()
	art := writeFile(t, filepath.Join(dir, "artifacts", version), data, 0o644)
	return Release{Sequence: seq, Version: version, Artifact: art, Install: in}
}

// request makes a Request for one subscription with a private state dir.
// The allowed target is the new release's target's directory.
func request(t *testing.T, newRel Release, prev *Release, stateDir string) *Request {
	var allowed []string
	if tg := newRel.Install.Target; tg != "" {
		allowed = []string{filepath.Dir(tg)}
	}
	return &Request{ChannelID: manifest.ChannelID{Product: "myapp", Channel: "stable"}, New: newRel, Previous: prev,
		StateDir: stateDir, AllowedTargets: allowed, Log: testLogger(t)}
}

// asError returns err as *Error, failing the test if it is not one.
func asError(t *testing.T, err error) *Error {
	t.Helper()
	var ie *Error
	if !errors.As(err, &ie) {
		t.Fatalf("error %v (%T) is not an *installers.Error", err, err)
	}
	return ie
}

// tarEntry describes one entry of a test archive (tar or zip).
type tarEntry struct {
	name string
	typ  byte // tar type flag; 0 means a regular file
	body string
	link string
	mode int64 // 0 means 0644 (files) or 0755 (directories)
	size int64 // declared size, if it differs from len(body) (tar only)
}

func (e tarEntry) header() *tar.Header {
	h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode,
		ModTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Format: tar.FormatPAX}
	if h.Typeflag == 0 {
		h.Typeflag = tar.TypeReg
	}
	if h.Mode == 0 {
		h.Mode = 0o644
		if h.Typeflag == tar.TypeDir {
			h.Mode = 0o755
		}
	}
	if h.Typeflag == tar.TypeReg {
		h.Size = int64(len(e.body))
		if e.size > 0 {
			h.Size = e.size
		}
	}
	return h
}

// makeTar returns a tar archive of entries. An entry with a declared size
// larger than its body gets zeros after the body.
func makeTar(t testing.TB, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.header()
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e.body))
			if pad := h.Size - int64(len(e.body)); pad > 0 {
				if _, err := tw.Write(make([]byte, pad)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// makeTarGz returns a gzip-compressed tar archive of entries.
func makeTarGz(t testing.TB, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(makeTar(t, entries)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// makeZip returns a zip archive of entries: typ tar.TypeDir, TypeSymlink
// (body = link) and TypeChar map to zip modes; others are files.
func makeZip(t testing.TB, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
		mode := fs.FileMode(e.mode)
		if mode == 0 {
			mode = 0o644
		}
		body := e.body
		switch e.typ {
		case tar.TypeDir:
			h.Name = strings.TrimSuffix(h.Name, "/") + "/"
			mode |= fs.ModeDir
		case tar.TypeSymlink:
			mode, body = fs.ModeSymlink|0o777, e.link
		case tar.TypeChar:
			mode |= fs.ModeDevice | fs.ModeCharDevice
		}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(body))
		if pad := e.size - int64(len(body)); pad > 0 {
			w.Write(make([]byte, pad))
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// listDir returns the names in dir, sorted, or nil if it does not exist.
func listDir(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// cleanupTree makes sure a tree with read-only directories can be removed
// by t.TempDir's cleanup (registered before, so run after this one).
func cleanupTree(t testing.TB, dir string) {
	t.Cleanup(func() { removeTree(dir) })
}

// removeTree removes path and everything under it, making read-only
// directories writable first.
func removeTree(path string) error {
	filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
	return os.RemoveAll(path)
}

// gnuSparseTar returns a tar archive holding one old-GNU sparse file
// (type 'S') of logical size bytes whose only data is data at offset 0:
// the rest is a hole. Such an archive of a few KiB stands for any size.
func gnuSparseTar(t testing.TB, name string, size int64, data []byte) []byte {
	t.Helper()
	var h [512]byte
	copy(h[0:], name)
	octal := func(b []byte, v int64) { copy(b, fmt.Sprintf("%0*o", len(b)-1, v)) }
	octal(h[100:108], 0o644)
	octal(h[108:116], 0)
	octal(h[116:124], 0)
	octal(h[124:136], int64(len(data))) // bytes stored in the archive
	octal(h[136:148], 1700000000)
	h[156] = 'S'
	copy(h[257:265], "ustar  \x00")
	octal(h[386:398], 0)                // sparse[0].offset
	octal(h[398:410], int64(len(data))) // sparse[0].numbytes
	octal(h[483:495], size)             // realsize
	copy(h[148:156], "        ")
	var sum int64
	for _, b := range h {
		sum += int64(b)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	var buf bytes.Buffer
	buf.Write(h[:])
	buf.Write(data)
	buf.Write(make([]byte, (512-len(data)%512)%512))
	buf.Write(make([]byte, 1024))
	return buf.Bytes()
}
