package installers

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/fleetcast/fleetcast/internal/clip"
)

// resolve returns the path, relative to the root, that the clean relative
// slash path rel leads to, following symlinks as the kernel would. It
// fails, wrapping ErrUnsafeArchive, if that leaves the root. From the first
// missing component (or one that is not a directory) on, the rest is
// resolved lexically: it cannot traverse symlinks yet, and every symlink is
// checked on its own by finish. Each step costs a constant number of system
// calls: directories are opened one by one as they are entered.
func (x *extractor) resolve(rel string) (string, error) {
	w := &resolver{dirs: []*os.Root{x.root}}
	defer w.close()
	todo := strings.Split(rel, "/")
	for hops := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		switch {
		case c == "" || c == ".":
			continue
		case c == "..":
			if !w.up() {
				return "", fmt.Errorf("%w: %q leads outside the release directory", ErrUnsafeArchive, clip.String(rel, 200))
			}
			continue
		case w.lexical:
			w.names = append(w.names, c)
			continue
		}
		target, err := w.enter(c)
		if err != nil {
			return "", err
		}
		if target == "" {
			continue
		}
		if hops++; hops > maxSymlinkHops {
			return "", fmt.Errorf("%w: %q: more than %d symlinks to follow", ErrUnsafeArchive, clip.String(rel, 200), maxSymlinkHops)
		}
		if strings.HasPrefix(target, "/") || filepath.IsAbs(target) {
			return "", fmt.Errorf("%w: %q leads through an absolute symlink", ErrUnsafeArchive, clip.String(rel, 200))
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return path.Join(w.names...), nil
}

// resolver is resolve's position: names are the components resolved so
// far; dirs[i+1] is the open directory names[:i+1] for the leading
// components that are existing directories (dirs[0] is the root).
type resolver struct {
	names   []string
	dirs    []*os.Root
	lexical bool // a component was missing or not a directory
}

// enter moves into component c of the current directory. It returns the
// target if c is a symlink (without moving), else "".
func (w *resolver) enter(c string) (string, error) {
	top := w.dirs[len(w.dirs)-1]
	fi, err := top.Lstat(c)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		w.lexical = true
	case err != nil:
		return "", err
	case fi.Mode()&fs.ModeSymlink != 0:
		return top.Readlink(c)
	case fi.IsDir():
		sub, err := top.OpenRoot(c)
		if err != nil {
			return "", err
		}
		w.dirs = append(w.dirs, sub)
	default:
		w.lexical = true
	}
	w.names = append(w.names, c)
	return "", nil
}

// up moves to the parent directory; false if already at the root.
func (w *resolver) up() bool {
	if len(w.names) == 0 {
		return false
	}
	if len(w.dirs)-1 == len(w.names) {
		w.dirs[len(w.dirs)-1].Close()
		w.dirs = w.dirs[:len(w.dirs)-1]
	}
	w.names = w.names[:len(w.names)-1]
	return true
}

// close closes the directories resolve opened.
func (w *resolver) close() {
	for _, d := range w.dirs[1:] {
		d.Close()
	}
}
