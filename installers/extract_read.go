package installers

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/fleetcast/fleetcast/internal/clip"
)

// This file reads the archive formats; extract.go creates the entries.

// Archive formats, recognized by their first bytes.
type archiveFormat int

const (
	formatTar archiveFormat = iota + 1
	formatTarGzip
	formatZip
)

// detectFormat reads f's magic bytes: gzip (1f 8b, holding a tar), zip
// (PK\x03\x04, or PK\x05\x06 when empty), or tar ("ustar" at offset 257).
func detectFormat(f io.ReaderAt) (archiveFormat, error) {
	var head [512]byte
	n, err := f.ReadAt(head[:], 0)
	if err != nil && err != io.EOF {
		return 0, fmt.Errorf("read archive header: %w", err)
	}
	b := head[:n]
	switch {
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return formatTarGzip, nil
	case bytes.HasPrefix(b, []byte("PK\x03\x04")), bytes.HasPrefix(b, []byte("PK\x05\x06")):
		return formatZip, nil
	case n >= 262 && string(b[257:262]) == "ustar":
		return formatTar, nil
	}
	return 0, fmt.Errorf("not a tar, tar.gz or zip archive (starts with % x)", b[:min(n, 8)])
}

// untarGzip extracts a gzip-compressed tar, decompressing at most the size
// limit plus tarOverheadPerEntry per allowed entry.
func (x *extractor) untarGzip(r io.Reader) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("read gzip: %w", err)
	}
	defer zr.Close()
	limit := x.lim.size + int64(x.lim.entries)*tarOverheadPerEntry
	return x.untar(&capReader{r: zr, left: limit, limit: limit})
}

// untar extracts a tar stream entry by entry.
func (x *extractor) untar(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		if err := x.tarEntry(hdr, tr); err != nil {
			return err
		}
	}
}

// tarEntry maps a tar header to an entry and adds it.
func (x *extractor) tarEntry(hdr *tar.Header, data io.Reader) error {
	e := entry{name: hdr.Name, perm: fs.FileMode(hdr.Mode) & fs.ModePerm, size: hdr.Size,
		link: hdr.Linkname, mtime: hdr.ModTime}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse:
		e.kind = kindFile
		e.sparse = isSparse(hdr)
	case tar.TypeDir:
		e.kind = kindDir
	case tar.TypeSymlink:
		e.kind = kindSymlink
	case tar.TypeLink:
		e.kind = kindHardlink
	case tar.TypeXGlobalHeader: // e.g. git archive's commit id: nothing to create
		return x.count(hdr.Name)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return unsafe(hdr.Name, "device or fifo (tar type %q) refused", hdr.Typeflag)
	default:
		return unsafe(hdr.Name, "unsupported tar entry type %q", hdr.Typeflag)
	}
	return x.add(e, data)
}

// isSparse reports whether a tar entry was stored sparse: old GNU type 'S',
// or the GNU PAX sparse records.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// unzip extracts a zip file after checking its entry count and the sizes
// its entries declare (reads are bounded too: declarations can lie).
func (x *extractor) unzip(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	zr, err := zip.NewReader(f, fi.Size())
	// ErrInsecurePath comes with a usable reader; add refuses such names.
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return fmt.Errorf("read zip: %w", err)
	}
	if len(zr.File) > x.lim.entries {
		return fmt.Errorf("%w: %d entries, more than the limit of %d", ErrUnsafeArchive, len(zr.File), x.lim.entries)
	}
	var declared uint64
	for _, zf := range zr.File {
		if declared += zf.UncompressedSize64; declared > uint64(x.lim.size) || zf.UncompressedSize64 > uint64(x.lim.size) {
			return fmt.Errorf("%w: entries declare more than the limit of %d unpacked bytes", ErrUnsafeArchive, x.lim.size)
		}
	}
	for _, zf := range zr.File {
		if err := x.zipEntry(zf); err != nil {
			return err
		}
	}
	return nil
}

// zipEntry maps a zip file header to an entry and adds it.
func (x *extractor) zipEntry(zf *zip.File) error {
	m := zf.Mode()
	e := entry{name: zf.Name, size: int64(zf.UncompressedSize64), mtime: zf.Modified}
	switch {
	case strings.HasSuffix(zf.Name, "/") || m.IsDir():
		e.kind = kindDir
	case m&fs.ModeSymlink != 0:
		e.kind = kindSymlink
	case m.Type() != 0:
		return unsafe(zf.Name, "special file (%v) refused", m.Type())
	default:
		e.kind = kindFile
	}
	e.perm = zipPerm(zf, e.kind == kindDir)
	if e.kind == kindDir {
		return x.add(e, nil)
	}
	rc, err := zf.Open()
	if err != nil {
		return fmt.Errorf("zip entry %q: %w", clip.String(zf.Name, 200), err)
	}
	defer rc.Close()
	if e.kind == kindSymlink {
		target, err := io.ReadAll(io.LimitReader(rc, MaxArchivePathLen+1))
		if err != nil {
			return fmt.Errorf("zip entry %q: %w", clip.String(zf.Name, 200), err)
		}
		e.link = string(target)
	}
	return x.add(e, rc)
}

// zipPerm returns an entry's permission bits: its Unix mode if the zip was
// made on Unix or macOS (creator 3 or 19) and has one, else 0755 for
// directories and 0644 for files (other systems store no Unix modes).
func zipPerm(zf *zip.File, dir bool) fs.FileMode {
	switch zf.CreatorVersion >> 8 {
	case 3, 19:
		if p := zf.Mode().Perm(); p != 0 {
			return p
		}
	}
	if dir {
		return 0o755
	}
	return 0o644
}

// capReader reads at most limit bytes of decompressed data and fails,
// wrapping ErrUnsafeArchive, if there is more.
type capReader struct {
	r           io.Reader
	left, limit int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		var one [1]byte
		if n, err := c.r.Read(one[:]); n == 0 {
			return 0, err
		}
		return 0, fmt.Errorf("%w: decompresses to more than %d bytes", ErrUnsafeArchive, c.limit)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}
