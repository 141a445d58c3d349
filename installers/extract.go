package installers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fleetcast/fleetcast/internal/clip"
)

// Limits on what one archive may unpack to, against zip and tar bombs.
const (
	// MaxArchiveEntries is the most entries (files, directories, links,
	// global headers) one archive may hold.
	MaxArchiveEntries = 1 << 20
	// MaxUnpackedSize is the most bytes of file content one archive may
	// unpack to.
	MaxUnpackedSize = 64 << 30
	// MaxArchivePathLen bounds each entry name and link target, in bytes.
	MaxArchivePathLen = 4096
	// MaxArchiveDepth bounds the directory levels of an entry name.
	MaxArchiveDepth = 128
	// tarOverheadPerEntry is how many bytes of headers and padding a tar
	// stream may hold per allowed entry, beyond file content: the gzip
	// decompressor stops at MaxUnpackedSize plus this times the entries.
	tarOverheadPerEntry = 8 << 10
	// maxSymlinkHops bounds symlinks followed resolving one path, as the
	// Linux kernel does (ELOOP).
	maxSymlinkHops = 40
)

// extractLimits are the limits one extraction enforces; zero fields mean
// the package defaults.
type extractLimits struct {
	entries int
	size    int64 // bytes of file content, holes included
	space   int64 // bytes of file data written (holes excluded); 0: unbounded
}

func (l extractLimits) orDefault() extractLimits {
	if l.entries <= 0 {
		l.entries = MaxArchiveEntries
	}
	if l.size <= 0 {
		l.size = MaxUnpackedSize
	}
	return l
}

// extractArchive unpacks the archive at artifact into dir, an existing empty
// directory, within lim (extractInto through a handle opened at dir).
func extractArchive(ctx context.Context, artifact, dir string, lim extractLimits) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("open release directory: %w", err)
	}
	defer root.Close()
	return extractInto(ctx, artifact, &targetDir{root: root, path: dir}, lim)
}

// extractInto unpacks the archive at artifact into the existing empty
// directory dir, within lim. It never creates anything outside dir, and
// refuses (with an error wrapping ErrUnsafeArchive) entries that would land
// outside it, symlinks resolving outside it, hard links to anything but a
// regular file extracted before, devices, fifos, sockets, duplicate names,
// and more entries or bytes than lim allows; more data than lim.space, or a
// write failing for want of space, wraps ErrNoSpace. Sparse tar entries are
// written with holes. On error dir holds a partial tree, for the caller to
// remove.
func extractInto(ctx context.Context, artifact string, dir *targetDir, lim extractLimits) error {
	f, err := os.Open(artifact)
	if err != nil {
		return fmt.Errorf("open archive: %w", err)
	}
	defer f.Close()
	format, err := detectFormat(f)
	if err != nil {
		return err
	}
	x := &extractor{ctx: ctx, root: dir.root, dir: dir.path, lim: lim.orDefault()}
	switch format {
	case formatTarGzip:
		err = x.untarGzip(f)
	case formatTar:
		err = x.untar(f)
	case formatZip:
		err = x.unzip(f)
	}
	if err != nil {
		return err
	}
	return x.finish()
}

// entryKind is what an archive entry creates.
type entryKind int

const (
	kindFile entryKind = iota + 1
	kindDir
	kindSymlink
	kindHardlink
)

// entry is one archive entry, from either format.
type entry struct {
	name  string // as in the archive
	kind  entryKind
	perm  fs.FileMode // permission bits only
	size  int64       // content size, files only
	link  string      // symlink target, or hard link's archive path
	mtime time.Time   // zero if unknown
	// sparse is set for a tar file entry stored sparse: its zeros are
	// written as holes.
	sparse bool
}

// extractor creates entries inside root. Every change it makes goes
// through os.Root, so that nothing it does can leave the directory even if
// the checks below missed something; finish only walks (without following
// symlinks) and fsyncs.
type extractor struct {
	ctx      context.Context
	root     *os.Root
	dir      string // root's path
	lim      extractLimits
	entries  int
	size     int64           // file content so far, holes included
	written  int64           // file data written so far, holes excluded
	symlinks int             // symlinks created so far
	lockdown []restrictedDir // directories whose final mode denies the owner
}

// restrictedDir is a directory whose archive mode lacks owner rwx; it gets
// that mode only once everything is extracted.
type restrictedDir struct {
	name string
	perm fs.FileMode
}

// unsafe returns an error wrapping ErrUnsafeArchive about the entry name.
func unsafe(name, format string, args ...any) error {
	return fmt.Errorf("%w: entry %q: %s", ErrUnsafeArchive, clip.String(name, 200), fmt.Sprintf(format, args...))
}

// count counts one more entry against the limit.
func (x *extractor) count(name string) error {
	if x.entries++; x.entries > x.lim.entries {
		return unsafe(name, "more than the limit of %d entries", x.lim.entries)
	}
	return nil
}

// add checks e's name and creates it; data is a file's content.
func (x *extractor) add(e entry, data io.Reader) error {
	if err := x.ctx.Err(); err != nil {
		return err
	}
	if err := x.count(e.name); err != nil {
		return err
	}
	name, err := cleanName(e.name)
	if err != nil {
		return unsafe(e.name, "%v", err)
	}
	if name == "" {
		if e.kind == kindDir {
			return nil // the release directory itself
		}
		return unsafe(e.name, "names the archive root")
	}
	if err := x.makeParent(e.name, name); err != nil {
		return err
	}
	switch e.kind {
	case kindDir:
		err = x.mkdir(name, e.perm)
	case kindFile:
		err = x.writeFile(name, e, data)
	case kindSymlink:
		err = x.symlink(name, e.link)
	case kindHardlink:
		err = x.hardlink(name, e.link)
	}
	if err != nil && !errors.Is(err, ErrUnsafeArchive) {
		return fmt.Errorf("entry %q: %w", clip.String(e.name, 200), err)
	}
	return err
}

// cleanName returns an entry name as a clean relative slash path ("" for
// the root), refusing empty, overlong, too deep, absolute and backslashed
// names and any ".." component, even one that would stay inside.
func cleanName(raw string) (string, error) {
	switch {
	case raw == "":
		return "", errors.New("empty name")
	case len(raw) > MaxArchivePathLen:
		return "", fmt.Errorf("name longer than %d bytes", MaxArchivePathLen)
	case strings.ContainsAny(raw, "\x00\\"):
		return "", errors.New("NUL or backslash in name")
	case strings.HasPrefix(raw, "/"):
		return "", errors.New("absolute path")
	}
	var parts []string
	for c := range strings.SplitSeq(raw, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			return "", errors.New(`".." component`)
		}
		if parts = append(parts, c); len(parts) > MaxArchiveDepth {
			return "", fmt.Errorf("more than %d levels deep", MaxArchiveDepth)
		}
	}
	name := strings.Join(parts, "/")
	if name != "" && !filepath.IsLocal(filepath.FromSlash(name)) {
		return "", errors.New("not a local path on this system")
	}
	return name, nil
}

// makeParent creates the missing directories above name, mode 0755
// whatever the umask. When the archive has symlinks, it first checks that
// the parent does not resolve outside the root through them.
func (x *extractor) makeParent(raw, name string) error {
	parent := path.Dir(name)
	if parent == "." {
		return nil
	}
	if x.symlinks > 0 {
		if _, err := x.resolve(parent); err != nil {
			return fmt.Errorf("entry %q: its directory: %w", clip.String(raw, 200), err)
		}
	}
	if fi, err := x.root.Lstat(parent); err == nil && fi.IsDir() {
		return nil
	}
	prefix := ""
	for c := range strings.SplitSeq(parent, "/") {
		prefix = path.Join(prefix, c)
		err := x.root.Mkdir(prefix, 0o755)
		if err == nil && canChmod {
			err = x.root.Chmod(prefix, 0o755)
		}
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("entry %q: create its directory: %w", clip.String(raw, 200), noSpace(err))
		}
	}
	return nil
}

// mkdir creates directory name (or accepts an existing one) with perm plus
// owner rwx; perm alone is applied by finish if it lacks those.
func (x *extractor) mkdir(name string, perm fs.FileMode) error {
	err := x.root.Mkdir(name, 0o700)
	if errors.Is(err, fs.ErrExist) {
		if fi, lerr := x.root.Lstat(name); lerr != nil || !fi.IsDir() {
			return unsafe(name, "duplicate name: a file or link exists there")
		}
	} else if err != nil {
		return noSpace(err)
	}
	if !canChmod {
		return nil
	}
	if perm&0o700 != 0o700 {
		x.lockdown = append(x.lockdown, restrictedDir{name, perm})
	}
	return x.root.Chmod(name, perm|0o700)
}

// writeFile creates the new file name with data's content, counting it
// against the size limit and the data written against the space limit,
// with e's mode and modification time, fsynced. A sparse tar entry is
// written with holes (tar.Reader seeks over them).
func (x *extractor) writeFile(name string, e entry, data io.Reader) error {
	left := x.lim.size - x.size
	if e.size > left {
		return unsafe(name, "%d bytes would pass the limit of %d unpacked bytes", e.size, x.lim.size)
	}
	f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return unsafe(name, "duplicate name")
	}
	if err != nil {
		return noSpace(err)
	}
	defer f.Close()
	w := &spaceWriter{x: x, name: name, f: f, sparse: e.sparse}
	n, err := io.CopyBuffer(w, &ctxReader{ctx: x.ctx, r: io.LimitReader(data, left+1)}, make([]byte, copyBufferSize))
	if err == nil && e.sparse {
		err = f.Truncate(n) // the file ends in a hole: give it its size
	}
	if x.size += n; x.size > x.lim.size {
		return unsafe(name, "content passes the limit of %d unpacked bytes", x.lim.size)
	}
	if err != nil {
		return noSpace(err)
	}
	if canChmod {
		if err := f.Chmod(e.perm); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return noSpace(err)
	}
	if err := f.Close(); err != nil {
		return noSpace(err)
	}
	if !e.mtime.IsZero() {
		x.root.Chtimes(name, e.mtime, e.mtime) // best effort: odd archive times may not be representable
	}
	return nil
}

// copyBufferSize is the unit in which entries are copied and, for sparse
// entries, in which zeros are skipped as holes.
const copyBufferSize = 64 << 10

// zeros is one copy buffer of zero bytes, to recognise holes.
var zeros = make([]byte, copyBufferSize)

// spaceWriter writes one entry's data to f, counting what it writes
// against the extraction's space limit. For a sparse entry it seeks over
// blocks of zeros instead of writing them, so that holes stay holes
// (archive/tar hides the sparse map and reads holes as zeros).
type spaceWriter struct {
	x      *extractor
	name   string
	f      *os.File
	sparse bool
}

func (w *spaceWriter) Write(p []byte) (int, error) {
	if w.sparse && bytes.Equal(p, zeros[:len(p)]) {
		if _, err := w.f.Seek(int64(len(p)), io.SeekCurrent); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if lim := w.x.lim.space; lim > 0 && w.x.written+int64(len(p)) > lim {
		return 0, fmt.Errorf("%w: entry %q: unpacking passes %d bytes of data, the free space of the target's file system less a reserve",
			ErrNoSpace, clip.String(w.name, 200), lim)
	}
	n, err := w.f.Write(p)
	w.x.written += int64(n)
	return n, err
}

// symlink creates the symlink name -> target after checking the target
// lexically; finish checks where it really leads.
func (x *extractor) symlink(name, target string) error {
	if err := checkLinkTarget(name, target); err != nil {
		return unsafe(name, "%v", err)
	}
	if err := x.root.Symlink(target, name); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return unsafe(name, "duplicate name")
		}
		return noSpace(err)
	}
	x.symlinks++
	return nil
}

// checkLinkTarget refuses empty, overlong, absolute and backslashed symlink
// targets and those that lead above the root when read as plain paths.
func checkLinkTarget(name, target string) error {
	switch {
	case target == "":
		return errors.New("empty symlink target")
	case len(target) > MaxArchivePathLen:
		return fmt.Errorf("symlink target longer than %d bytes", MaxArchivePathLen)
	case strings.ContainsAny(target, "\x00\\"):
		return errors.New("NUL or backslash in symlink target")
	case strings.HasPrefix(target, "/") || filepath.IsAbs(filepath.FromSlash(target)) || filepath.VolumeName(filepath.FromSlash(target)) != "":
		return fmt.Errorf("absolute symlink target %q", clip.String(target, 200))
	}
	if j := path.Join(path.Dir(name), target); j == ".." || strings.HasPrefix(j, "../") {
		return fmt.Errorf("symlink target %q leads outside the release directory", clip.String(target, 200))
	}
	return nil
}

// hardlink creates name as a hard link to the regular file at the archive
// path link, which must have been extracted before.
func (x *extractor) hardlink(name, link string) error {
	old, err := cleanName(link)
	if err != nil || old == "" {
		return unsafe(name, "hard link target %q: %v", clip.String(link, 200), errOr(err, "the archive root"))
	}
	dir, err := x.resolve(path.Dir(old))
	if err != nil {
		return fmt.Errorf("entry %q: hard link target: %w", clip.String(name, 200), err)
	}
	old = path.Join(dir, path.Base(old))
	fi, err := x.root.Lstat(old)
	if err != nil || !fi.Mode().IsRegular() {
		return unsafe(name, "hard link target %q is not a regular file extracted before it", clip.String(link, 200))
	}
	if err := x.root.Link(old, name); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return unsafe(name, "duplicate name")
		}
		return err
	}
	return nil
}

// errOr returns err, or an error saying what if err is nil.
func errOr(err error, what string) error {
	if err != nil {
		return err
	}
	return errors.New(what)
}

// finish checks every symlink where it leads, now that the tree is final,
// fsyncs every directory, and gives restricted directories their modes,
// deepest first. It walks through the root, never following a symlink.
func (x *extractor) finish() error {
	err := fs.WalkDir(x.root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			if _, err := x.resolve(p); err != nil {
				return fmt.Errorf("symlink %q: %w", clip.String(p, 200), err)
			}
		}
		if d.IsDir() {
			return syncIn(x.root, p, filepath.Join(x.dir, filepath.FromSlash(p)))
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(x.lockdown, func(a, b restrictedDir) int {
		return strings.Count(b.name, "/") - strings.Count(a.name, "/")
	})
	for _, d := range x.lockdown {
		if err := x.root.Chmod(d.name, d.perm); err != nil {
			return fmt.Errorf("entry %q: chmod: %w", clip.String(d.name, 200), err)
		}
	}
	return nil
}

// noSpace wraps ErrNoSpace around an error that says the file system is
// full (or the quota used up).
func noSpace(err error) error {
	if err != nil && isNoSpace(err) && !errors.Is(err, ErrNoSpace) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return err
}

// ctxReader fails reads once ctx is done, so that unpacking a large
// entry stops when the agent shuts down.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
