package installers

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/fleetcast/fleetcast/internal/atomicfile"
)

const (
	// tempInfix marks the file installer's temporary files, created next to
	// their destination as .<base>.fleetcast-tmp-<random>.
	tempInfix = ".fleetcast-tmp-"
	// originalName, in StateDir, holds the file that fleetcast's first
	// install at the target replaced.
	originalName = "original"
	// originalNone, in StateDir, records that there was no file to keep.
	originalNone = "original.none"
	// defaultFileMode applies when the manifest gives no mode.
	defaultFileMode fs.FileMode = 0o644
)

// fileInstaller replaces one file. Every operation on the target's
// directory goes through a handle anchored at the allowed target (anchor.go).
type fileInstaller struct {
	r      *run
	target string // the clean absolute target, for messages
	base   string // the target's name in its directory
}

var _ installer = (*fileInstaller)(nil)

func newFileInstaller(r *run) (*fileInstaller, error) {
	target := filepath.Clean(r.req.New.Install.Target)
	if r.prev == nil {
		fi, err := os.Stat(r.req.StateDir)
		if err != nil || !fi.IsDir() || r.req.StateDir == "" {
			return nil, fmt.Errorf("state directory %q (needed to keep the original file): missing or not a directory", r.req.StateDir)
		}
	}
	if _, err := allowedPrefix(r.req.AllowedTargets, target); err != nil {
		return nil, err
	}
	return &fileInstaller{r: r, target: target, base: filepath.Base(target)}, nil
}

func (f *fileInstaller) install(ctx context.Context) error {
	mode, err := parseMode(f.r.req.New.Install.Mode, defaultFileMode)
	if err != nil {
		return err
	}
	d, err := f.prepare()
	if err != nil {
		return err
	}
	defer d.Close()
	if f.r.prev == nil {
		if err := f.saveOriginal(d); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := f.place(d, f.r.req.New.Artifact, mode); err != nil {
		return err
	}
	f.r.done("installed file", slog.String("target", f.target), slog.String("mode", modeString(mode)),
		slog.String("reason", "artifact copied to a temporary file and renamed over the target"))
	return nil
}

// rollback installs the previous release's artifact the same way, or puts
// back the original state when there is no previous release.
func (f *fileInstaller) rollback(context.Context) error {
	d, err := f.prepare()
	if err != nil {
		return err
	}
	defer d.Close()
	if p := f.r.prev; p != nil {
		mode, err := parseMode(p.Install.Mode, defaultFileMode)
		if err != nil {
			return err
		}
		if err := f.place(d, p.Artifact, mode); err != nil {
			return fmt.Errorf("reinstall previous release %s: %w", p.Version, err)
		}
		f.r.done("reinstalled previous file", slog.String("target", f.target), slog.String("previous_version", p.Version))
		return nil
	}
	return f.restoreOriginal(d)
}

// partial is false: the target changes only by the final rename.
func (f *fileInstaller) partial() bool { return false }

// prepare opens the target's directory through the allowed target
// (creating it if missing), removes temporary files of earlier interrupted
// runs and refuses a directory as the target.
func (f *fileInstaller) prepare() (*targetDir, error) {
	d, err := openFileTargetDir(f.r.req.AllowedTargets, f.target)
	if err != nil {
		return nil, err
	}
	if err := removeStaleTemps(d, f.base); err != nil {
		d.Close()
		return nil, err
	}
	if fi, err := lstatIn(d, f.base); err != nil || fi != nil && fi.IsDir() {
		d.Close()
		return nil, cmp.Or(err, fmt.Errorf("target %s is a directory; the file installer replaces a file", f.target))
	}
	return d, nil
}

// saveOriginal keeps what is at the target before fleetcast first replaces
// it: a copy in StateDir/original, or the marker StateDir/original.none when
// there is nothing. Once either exists it is never replaced: after an
// interrupted first install the target may already hold the new release.
func (f *fileInstaller) saveOriginal(d *targetDir) error {
	state := f.r.req.StateDir
	orig, none := filepath.Join(state, originalName), filepath.Join(state, originalNone)
	if exists(orig) || exists(none) {
		f.r.log.Info("original already saved", slog.String("reason", "an earlier run saved it before replacing the target"))
		return nil
	}
	sd, err := os.OpenRoot(state)
	if err != nil {
		return fmt.Errorf("open state directory: %w", err)
	}
	defer sd.Close()
	stateDir := &targetDir{root: sd, path: state}
	if err := removeStaleTemps(stateDir, originalName); err != nil {
		return err
	}
	fi, err := lstatIn(d, f.base)
	switch {
	case err != nil:
		return err
	case fi == nil:
		if err := atomicfile.WriteFile(none, nil, 0o600); err != nil {
			return fmt.Errorf("record that %s did not exist: %w", f.target, err)
		}
		f.r.done("no original file", slog.String("target", f.target), slog.String("reason", "rollback without a previous release will remove the target"))
		return nil
	}
	if err := cloneEntry(d, f.base, fi, stateDir, originalName); err != nil {
		return fmt.Errorf("save original %s: %w", f.target, err)
	}
	f.r.done("saved original file", slog.String("target", f.target), slog.String("saved", orig),
		slog.String("reason", "first install by fleetcast; rollback without a previous release restores it"))
	return nil
}

// restoreOriginal puts back what saveOriginal kept.
func (f *fileInstaller) restoreOriginal(d *targetDir) error {
	state := f.r.req.StateDir
	orig := filepath.Join(state, originalName)
	if fi, err := os.Lstat(orig); err == nil {
		sd, err := os.OpenRoot(state)
		if err != nil {
			return fmt.Errorf("open state directory: %w", err)
		}
		defer sd.Close()
		if err := cloneEntry(&targetDir{root: sd, path: state}, originalName, fi, d, f.base); err != nil {
			return fmt.Errorf("restore original %s: %w", f.target, err)
		}
		f.r.done("restored original file", slog.String("target", f.target), slog.String("from", orig))
		return nil
	}
	if !exists(filepath.Join(state, originalNone)) {
		return fmt.Errorf("no previous release and no original saved in %s: cannot restore %s", state, f.target)
	}
	if err := d.root.Remove(f.base); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove target: %w", err)
	}
	if err := d.sync(); err != nil {
		return err
	}
	f.r.done("removed target", slog.String("target", f.target), slog.String("reason", "it did not exist before fleetcast's first install"))
	return nil
}

// place copies src to a temporary file next to the target, gives it the
// owner of the file it replaces (as root) and mode, fsyncs it, renames it
// over the target and fsyncs the directory, all through d.
func (f *fileInstaller) place(d *targetDir, src string, mode fs.FileMode) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("open artifact: %w", err)
	}
	defer in.Close()
	tmp, out, err := createTemp(d, f.base)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			out.Close()
			d.root.Remove(tmp)
		}
	}()
	if _, err = io.Copy(out, in); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, d.join(tmp), err)
	}
	owner, _ := lstatIn(d, f.base)
	if err = finishFile(out, d.join(tmp), owner, mode); err != nil {
		return err
	}
	if err = d.root.Rename(tmp, f.base); err != nil {
		return fmt.Errorf("rename over target: %w", err)
	}
	return d.sync()
}

// createTemp creates the new file .<base>.fleetcast-tmp-<random> in d.
func createTemp(d *targetDir, base string) (string, *os.File, error) {
	for range 10 {
		name := "." + base + tempInfix + rand.Text()
		out, err := d.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", nil, fmt.Errorf("create temporary file in %s: %w", d.path, err)
		}
		return name, out, nil
	}
	return "", nil, fmt.Errorf("create temporary file in %s: names taken", d.path)
}

// finishFile gives tmp (named what in messages) the owner of the file
// described by owner if there is one, then mode, fsyncs and closes it.
func finishFile(tmp *os.File, what string, owner fs.FileInfo, mode fs.FileMode) error {
	if owner != nil {
		if err := copyOwner(tmp, owner); err != nil {
			return fmt.Errorf("give %s its owner: %w", what, err)
		}
	}
	if canChmod {
		if err := tmp.Chmod(mode); err != nil {
			return fmt.Errorf("chmod %s: %w", what, err)
		}
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", what, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", what, err)
	}
	return nil
}

// cloneEntry atomically makes name in dst a copy of name src in from
// (described by fi): a regular file is copied with its owner (as root) and
// mode and fsynced, a symlink is recreated (never followed). dst is fsynced.
func cloneEntry(from *targetDir, src string, fi fs.FileInfo, to *targetDir, dst string) error {
	var tmp string
	var err error
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		tmp, err = copySymlink(from, src, to, dst)
	case fi.Mode().IsRegular():
		tmp, err = copyFile(from, src, fi, to, dst)
	default:
		return fmt.Errorf("%s is neither a regular file nor a symlink (%v)", from.join(src), fi.Mode().Type())
	}
	if err == nil {
		err = to.root.Rename(tmp, dst)
	}
	if err != nil {
		if tmp != "" {
			to.root.Remove(tmp)
		}
		return err
	}
	return to.sync()
}

// copySymlink creates a temporary symlink in to with src's target and
// returns its name.
func copySymlink(from *targetDir, src string, to *targetDir, dst string) (string, error) {
	target, err := from.root.Readlink(src)
	if err != nil {
		return "", err
	}
	tmp := "." + dst + tempInfix + rand.Text()
	return tmp, to.root.Symlink(target, tmp)
}

// copyFile copies the regular file src (described by fi) to a new
// temporary file in to with src's owner (as root) and mode, fsynced, and
// returns its name. The file opened must be the one fi describes.
func copyFile(from *targetDir, src string, fi fs.FileInfo, to *targetDir, dst string) (string, error) {
	in, err := from.root.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	if st, err := in.Stat(); err != nil || !os.SameFile(st, fi) {
		return "", fmt.Errorf("%w: %s was replaced while it was being copied", ErrUnsafeTarget, from.join(src))
	}
	tmp, out, err := createTemp(to, dst)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return tmp, fmt.Errorf("copy %s: %w", from.join(src), err)
	}
	mode := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	if err := finishFile(out, to.join(tmp), fi, mode); err != nil {
		out.Close()
		return tmp, err
	}
	return tmp, nil
}

// removeStaleTemps removes the temporary files .<base>.fleetcast-tmp-*
// that interrupted runs left in d. Directories of that name are not
// fleetcast's and are left alone.
func removeStaleTemps(d *targetDir, base string) error {
	entries, err := readDirIn(d)
	if err != nil {
		return fmt.Errorf("look for leftover temporary files: %w", err)
	}
	prefix := "." + base + tempInfix
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix) || e.IsDir() {
			continue
		}
		if err := d.root.Remove(e.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove leftover temporary file: %w", err)
		}
	}
	return nil
}

// readDirIn lists d.
func readDirIn(d *targetDir) ([]fs.DirEntry, error) {
	f, err := d.root.Open(".")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}

// exists reports whether something (any type) is at path.
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// modeString formats mode as an octal Unix mode, special bits included.
func modeString(m fs.FileMode) string {
	v := uint32(m.Perm())
	for mode, bit := range map[fs.FileMode]uint32{fs.ModeSetuid: 0o4000, fs.ModeSetgid: 0o2000, fs.ModeSticky: 0o1000} {
		if m&mode != 0 {
			v |= bit
		}
	}
	return fmt.Sprintf("%04o", v)
}
