package installers

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/fleetcast/fleetcast/internal/atomicfile"
	"github.com/fleetcast/fleetcast/internal/boundedfile"
	"github.com/fleetcast/fleetcast/internal/clip"
)

// The file and archive installers never use a path to change the file
// system. They open the allowed prefix that holds the target (os.Root),
// then reach everything below it through that handle, one directory handle
// at a time: the kernel resolves each name relative to an open directory,
// and os.Root refuses any resolution (a planted symlink, a directory swapped
// for a link during a download, "..") that would leave the prefix. Paths
// appear only in messages.

// targetDir is an open directory at or below an allowed target prefix.
type targetDir struct {
	root *os.Root
	path string // the directory's absolute path when opened, for messages
}

func (d *targetDir) Close() error { return d.root.Close() }

// join returns the path of name in d, for messages and logs.
func (d *targetDir) join(name string) string { return filepath.Join(d.path, filepath.FromSlash(name)) }

// sync fsyncs the directory, so that creations, removals and renames in it
// are durable.
func (d *targetDir) sync() error { return syncIn(d.root, ".", d.path) }

// syncIn fsyncs the directory name below root (what is the path for
// messages). Windows cannot open directories for fsync; NTFS journals them.
func syncIn(root *os.Root, name, what string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	f, err := root.Open(name)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", what, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", what, err)
	}
	return nil
}

// allowedPrefix returns the longest of allowed that holds the clean
// absolute path p on a component boundary (p itself included), or an error
// wrapping ErrUnsafeTarget.
func allowedPrefix(allowed []string, p string) (string, error) {
	best := ""
	for _, a := range allowed {
		if !filepath.IsAbs(a) {
			continue
		}
		a = filepath.Clean(a)
		rel, err := filepath.Rel(a, p)
		if err != nil || !filepath.IsLocal(rel) && rel != "." {
			continue
		}
		if len(a) > len(best) {
			best = a
		}
	}
	if best == "" {
		if len(allowed) == 0 {
			return "", fmt.Errorf("%w: %s: no allowed targets given", ErrUnsafeTarget, p)
		}
		return "", fmt.Errorf("%w: %s is not under any allowed target %q", ErrUnsafeTarget, p, allowed)
	}
	return best, nil
}

// openTargetDir opens the directory dir (clean, absolute) through the
// allowed prefix that holds it, creating missing directories (mode 0755
// less the umask, each fsynced into its parent) when create is set. A
// symlink below the prefix is followed only while it stays inside the
// prefix; one leading outside, or a component that is not a directory,
// fails with ErrUnsafeTarget. When dir is the parent of the prefix itself
// (a prefix naming one file), that parent is opened directly: the operator
// named it.
func openTargetDir(allowed []string, dir string, create bool) (*targetDir, error) {
	prefix, err := allowedPrefix(allowed, dir)
	if err != nil {
		return nil, err
	}
	pr, err := openPrefix(prefix, create)
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(prefix, dir)
	if err != nil {
		pr.Close()
		return nil, err
	}
	if rel == "." {
		return &targetDir{root: pr, path: dir}, nil
	}
	defer pr.Close()
	rel = filepath.ToSlash(rel)
	if create {
		if err := mkdirBelow(pr, prefix, rel); err != nil {
			return nil, err
		}
	}
	sub, err := pr.OpenRoot(rel)
	if err != nil {
		return nil, targetError(dir, err)
	}
	return &targetDir{root: sub, path: dir}, nil
}

// openPrefix opens the allowed prefix, creating it first (with its missing
// parents) if create is set: the operator named it, so its path is trusted.
func openPrefix(prefix string, create bool) (*os.Root, error) {
	r, err := os.OpenRoot(prefix)
	if errors.Is(err, fs.ErrNotExist) && create {
		if err := atomicfile.MkdirAll(prefix, 0o755); err != nil {
			return nil, fmt.Errorf("create allowed target %s: %w", prefix, err)
		}
		r, err = os.OpenRoot(prefix)
	}
	if err != nil {
		return nil, fmt.Errorf("open allowed target %s: %w", prefix, err)
	}
	return r, nil
}

// openFileTargetDir opens the directory that holds the file target: through
// the allowed prefix that holds the target, or, when the target is itself a
// prefix (allowed_targets names the file), the prefix's parent.
func openFileTargetDir(allowed []string, target string) (*targetDir, error) {
	prefix, err := allowedPrefix(allowed, target)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(target)
	if prefix != target {
		return openTargetDir(allowed, dir, true)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open the directory of allowed target %s: %w", target, err)
	}
	return &targetDir{root: r, path: dir}, nil
}

// mkdirBelow creates the missing directories of rel below root, one at a
// time, each fsynced into its parent.
func mkdirBelow(root *os.Root, rootPath, rel string) error {
	parent := "."
	for c := range strings.SplitSeq(rel, "/") {
		name := path.Join(parent, c)
		err := root.Mkdir(name, 0o755)
		switch {
		case err == nil:
			if err := syncIn(root, parent, filepath.Join(rootPath, filepath.FromSlash(parent))); err != nil {
				return err
			}
		case errors.Is(err, fs.ErrExist):
		default:
			return targetError(filepath.Join(rootPath, filepath.FromSlash(name)), err)
		}
		parent = name
	}
	return nil
}

// targetError describes a failure to reach p through an anchored handle,
// wrapping ErrUnsafeTarget when a link or another file stood in the way.
func targetError(p string, err error) error {
	if isEscape(err) {
		return fmt.Errorf("%w: %s: %v: a symbolic link or a file below the allowed target stands where a directory belongs, and fleetcast does not follow links out of an allowed target; not installed",
			ErrUnsafeTarget, p, err)
	}
	return fmt.Errorf("open %s: %w", p, err)
}

// isEscape reports whether err is os.Root refusing a path that leaves its
// root, or a path component that is not a directory or loops. os.Root
// reports the first two with unexported errors, known only by their text
// (TestArchivePlantedPaths and TestFilePlantedPaths fail if that changes).
func isEscape(err error) bool {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		if m := pe.Err.Error(); strings.Contains(m, "escapes from parent") || strings.Contains(m, "not a directory") {
			return true
		}
	}
	return errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ELOOP)
}

// lstatIn returns what name (one component) is in d, nil if nothing.
func lstatIn(d *targetDir, name string) (fs.FileInfo, error) {
	fi, err := d.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", d.join(name), err)
	}
	return fi, nil
}

// openSubdir opens name in d, a directory fleetcast made: if it is missing
// and create is set it is made; a symlink or another type there is refused
// with ErrUnsafeTarget, and the handle opened is checked to be the
// directory inspected, so that a swap in between is caught.
func openSubdir(d *targetDir, name string, create bool) (*targetDir, error) {
	p := d.join(name)
	fi, err := lstatIn(d, name)
	if err != nil {
		return nil, err
	}
	if fi == nil && create {
		if err := d.root.Mkdir(name, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create %s: %w", p, err)
		}
		if err := d.sync(); err != nil {
			return nil, err
		}
		if fi, err = lstatIn(d, name); err != nil {
			return nil, err
		}
	}
	if fi == nil {
		return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
	}
	if !fi.IsDir() {
		return nil, notOurs(d, name, fi, "a directory")
	}
	sub, err := d.root.OpenRoot(name)
	if err != nil {
		return nil, targetError(p, err)
	}
	if st, err := sub.Stat("."); err != nil || !os.SameFile(st, fi) {
		sub.Close()
		return nil, fmt.Errorf("%w: %s was replaced while it was being opened; not installed", ErrUnsafeTarget, p)
	}
	return &targetDir{root: sub, path: p}, nil
}

// notOurs is the error for a path fleetcast manages that holds something
// fleetcast did not make there.
func notOurs(d *targetDir, name string, fi fs.FileInfo, want string) error {
	what := boundedfile.Kind(fi.Mode())
	if fi.Mode()&fs.ModeSymlink != 0 {
		link, _ := d.root.Readlink(name)
		what = fmt.Sprintf("a symbolic link to %q", clip.String(link, 200))
	}
	return fmt.Errorf("%w: %s is %s, not %s that fleetcast made; it is not followed or replaced (someone else put it there: inspect it, then remove it to let fleetcast install)",
		ErrUnsafeTarget, d.join(name), what, want)
}
