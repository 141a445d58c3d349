package installers

import (
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

// fileInstaller replaces one file.
type fileInstaller struct {
	r      *run
	target string
	dir    string
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
	return &fileInstaller{r: r, target: target, dir: filepath.Dir(target)}, nil
}

func (f *fileInstaller) install(ctx context.Context) error {
	mode, err := parseMode(f.r.req.New.Install.Mode, defaultFileMode)
	if err != nil {
		return err
	}
	if err := f.prepare(); err != nil {
		return err
	}
	if f.r.prev == nil {
		if err := f.saveOriginal(); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := f.place(f.r.req.New.Artifact, mode); err != nil {
		return err
	}
	f.r.done("installed file", slog.String("target", f.target), slog.String("mode", modeString(mode)),
		slog.String("reason", "artifact copied to a temporary file and renamed over the target"))
	return nil
}

// rollback installs the previous release's artifact the same way, or puts
// back the original state when there is no previous release.
func (f *fileInstaller) rollback(context.Context) error {
	if err := removeStaleTemps(f.dir, filepath.Base(f.target)); err != nil {
		return err
	}
	if p := f.r.prev; p != nil {
		mode, err := parseMode(p.Install.Mode, defaultFileMode)
		if err != nil {
			return err
		}
		if err := f.place(p.Artifact, mode); err != nil {
			return fmt.Errorf("reinstall previous release %s: %w", p.Version, err)
		}
		f.r.done("reinstalled previous file", slog.String("target", f.target), slog.String("previous_version", p.Version))
		return nil
	}
	return f.restoreOriginal()
}

// partial is false: the target changes only by the final rename.
func (f *fileInstaller) partial() bool { return false }

// prepare creates the target's directory, removes temporary files of
// earlier interrupted runs and refuses a directory as the target.
func (f *fileInstaller) prepare() error {
	if err := atomicfile.MkdirAll(f.dir, 0o755); err != nil {
		return fmt.Errorf("create the target's directory: %w", err)
	}
	if err := removeStaleTemps(f.dir, filepath.Base(f.target)); err != nil {
		return err
	}
	if fi, err := os.Lstat(f.target); err == nil && fi.IsDir() {
		return fmt.Errorf("target %s is a directory; the file installer replaces a file", f.target)
	}
	return nil
}

// saveOriginal keeps what is at the target before fleetcast first replaces
// it: a copy in StateDir/original, or the marker StateDir/original.none when
// there is nothing. Once either exists it is never replaced: after an
// interrupted first install the target may already hold the new release.
func (f *fileInstaller) saveOriginal() error {
	state := f.r.req.StateDir
	orig, none := filepath.Join(state, originalName), filepath.Join(state, originalNone)
	if exists(orig) || exists(none) {
		f.r.log.Info("original already saved", slog.String("reason", "an earlier run saved it before replacing the target"))
		return nil
	}
	if err := removeStaleTemps(state, originalName); err != nil {
		return err
	}
	fi, err := os.Lstat(f.target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := atomicfile.WriteFile(none, nil, 0o600); err != nil {
			return fmt.Errorf("record that %s did not exist: %w", f.target, err)
		}
		f.r.done("no original file", slog.String("target", f.target), slog.String("reason", "rollback without a previous release will remove the target"))
		return nil
	case err != nil:
		return fmt.Errorf("inspect target: %w", err)
	}
	if err := cloneEntry(f.target, fi, orig); err != nil {
		return fmt.Errorf("save original %s: %w", f.target, err)
	}
	f.r.done("saved original file", slog.String("target", f.target), slog.String("saved", orig),
		slog.String("reason", "first install by fleetcast; rollback without a previous release restores it"))
	return nil
}

// restoreOriginal puts back what saveOriginal kept.
func (f *fileInstaller) restoreOriginal() error {
	state := f.r.req.StateDir
	orig := filepath.Join(state, originalName)
	if fi, err := os.Lstat(orig); err == nil {
		if err := cloneEntry(orig, fi, f.target); err != nil {
			return fmt.Errorf("restore original %s: %w", f.target, err)
		}
		f.r.done("restored original file", slog.String("target", f.target), slog.String("from", orig))
		return nil
	}
	if !exists(filepath.Join(state, originalNone)) {
		return fmt.Errorf("no previous release and no original saved in %s: cannot restore %s", state, f.target)
	}
	if err := os.Remove(f.target); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove target: %w", err)
	}
	if err := atomicfile.SyncDir(f.dir); err != nil {
		return err
	}
	f.r.done("removed target", slog.String("target", f.target), slog.String("reason", "it did not exist before fleetcast's first install"))
	return nil
}

// place copies src to a temporary file next to the target, gives it the
// owner of the file it replaces (as root) and mode, fsyncs it, renames it
// over the target and fsyncs the directory.
func (f *fileInstaller) place(src string, mode fs.FileMode) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("open artifact: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(f.dir, "."+filepath.Base(f.target)+tempInfix+"*")
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = io.Copy(tmp, in); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, tmp.Name(), err)
	}
	if err = finishFile(tmp, f.target, mode); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), f.target); err != nil {
		return fmt.Errorf("rename over target: %w", err)
	}
	return atomicfile.SyncDir(f.dir)
}

// finishFile gives tmp the owner of the file at ownerOf if it exists, then
// mode, fsyncs and closes it.
func finishFile(tmp *os.File, ownerOf string, mode fs.FileMode) error {
	if fi, err := os.Lstat(ownerOf); err == nil {
		if err := copyOwner(tmp, fi); err != nil {
			return fmt.Errorf("give %s the owner of %s: %w", tmp.Name(), ownerOf, err)
		}
	}
	if canChmod {
		if err := tmp.Chmod(mode); err != nil {
			return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
		}
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	return nil
}

// cloneEntry atomically makes dst a copy of src (described by fi): a hard
// link where possible, else a copy with src's owner and mode, fsynced; a
// symlink is recreated. dst's directory is fsynced.
func cloneEntry(src string, fi fs.FileInfo, dst string) error {
	dir := filepath.Dir(dst)
	tmp := filepath.Join(dir, "."+filepath.Base(dst)+tempInfix+rand.Text())
	var err error
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		err = copySymlink(src, tmp)
	case fi.Mode().IsRegular():
		if os.Link(src, tmp) != nil {
			err = copyFile(src, fi, tmp)
		}
	default:
		return fmt.Errorf("%s is neither a regular file nor a symlink (%v)", src, fi.Mode().Type())
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return atomicfile.SyncDir(dir)
}

// copySymlink creates dst as a symlink with src's target.
func copySymlink(src, dst string) error {
	target, err := os.Readlink(src)
	if err != nil {
		return err
	}
	return os.Symlink(target, dst)
}

// copyFile copies src (described by fi) to the new file dst with src's
// owner (as root) and mode, fsynced.
func copyFile(src string, fi fs.FileInfo, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	mode := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	if err := finishFile(out, src, mode); err != nil {
		out.Close()
		return err
	}
	return nil
}

// removeStaleTemps removes the temporary files .<base>.fleetcast-tmp-*
// that interrupted runs left in dir.
func removeStaleTemps(dir, base string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("look for leftover temporary files: %w", err)
	}
	prefix := "." + base + tempInfix
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove leftover temporary file: %w", err)
			}
		}
	}
	return nil
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
