package installers

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fleetcast/fleetcast/internal/clip"
	"github.com/fleetcast/fleetcast/manifest"
)

// The archive installer's layout under the target directory:
//
//	TARGET/releases/<version>/            one unpacked release each
//	TARGET/releases/.<version>.tmp-<rnd>/ a release being unpacked
//	TARGET/current -> releases/<version>  the installed release (relative symlink)
//	TARGET/current.tmp-<rnd>              the next current link, before its rename
const (
	releasesDir      = "releases"
	currentLink      = "current"
	currentTmpPrefix = "current.tmp-"
	releaseTmpInfix  = ".tmp-"
)

// Free space the archive installer leaves on the target's file system: 5%
// of its size, at most maxSpaceReserve (so that the machine keeps working
// after an unpack, and the logs can still be written).
const (
	spaceReserveDivisor = 20
	maxSpaceReserve     = 1 << 30
)

// archiveInstaller unpacks an archive and switches TARGET/current to it.
// Every operation goes through handles anchored at the allowed target
// (anchor.go); only the release directories that its state records as its
// own are ever replaced or pruned.
type archiveInstaller struct {
	r      *run
	target string // clean absolute path, for messages
	keep   int
	limits extractLimits

	// Set by open, released by close.
	dir      *targetDir // TARGET
	releases *targetDir // TARGET/releases
	st       *archiveState
}

var _ installer = (*archiveInstaller)(nil)

func newArchiveInstaller(r *run) (*archiveInstaller, error) {
	if err := archiveSupported(); err != nil {
		return nil, err
	}
	n := &r.req.New
	if p := r.prev; p != nil && p.Version == n.Version && p.Sequence != n.Sequence {
		return nil, fmt.Errorf("previous release (sequence %d) has the same version %q as sequence %d, but versions are unique per channel (docs/SPEC.md) and name the release directories; not installed",
			p.Sequence, n.Version, n.Sequence)
	}
	if fi, err := os.Stat(r.req.StateDir); err != nil || !fi.IsDir() || r.req.StateDir == "" {
		return nil, fmt.Errorf("state directory %q (needed to record the release directories the installer makes): missing or not a directory", r.req.StateDir)
	}
	target := filepath.Clean(n.Install.Target)
	if _, err := allowedPrefix(r.req.AllowedTargets, target); err != nil {
		return nil, err
	}
	keep := r.req.KeepReleases
	if keep <= 0 {
		keep = DefaultKeepReleases
	}
	return &archiveInstaller{r: r, target: target, keep: keep, limits: r.req.limits.orDefault()}, nil
}

// install unpacks the new release unless current already points to it
// (an earlier run got that far), switches current to it and prunes.
func (a *archiveInstaller) install(ctx context.Context) error {
	v := a.r.req.New.Version
	if err := a.open(); err != nil {
		return err
	}
	defer a.close()
	cur, err := a.current()
	if err != nil {
		return err
	}
	if cur == v && a.st.has(v) && isDirIn(a.releases, v) {
		a.r.done("release already unpacked", slog.String("dir", a.releases.join(v)),
			slog.String("reason", "current points to it: an earlier run unpacked it and switched"))
	} else if err := a.unpack(ctx, a.r.req.New.Artifact, v); err != nil {
		return err
	}
	if err := a.switchTo(v); err != nil {
		return err
	}
	a.prune(v)
	return nil
}

// rollback switches current back to the previous release (unpacking its
// artifact again if its directory is gone), or removes current when there
// is no previous release; then removes the new release's directory.
func (a *archiveInstaller) rollback(ctx context.Context) error {
	newV := a.r.req.New.Version
	if err := a.open(); err != nil {
		return err
	}
	defer a.close()
	if p := a.r.prev; p != nil {
		if !a.st.has(p.Version) || !isDirIn(a.releases, p.Version) {
			if err := a.unpack(ctx, p.Artifact, p.Version); err != nil {
				return fmt.Errorf("unpack previous release %s again: %w", p.Version, err)
			}
		}
		if err := a.switchTo(p.Version); err != nil {
			return err
		}
		if p.Version == newV {
			return nil
		}
	} else if err := a.removeCurrent(); err != nil {
		return err
	}
	if err := a.removeRelease(newV); err != nil {
		return fmt.Errorf("remove the failed release: %w", err)
	}
	a.r.done("removed failed release", slog.String("dir", a.releases.join(newV)))
	return nil
}

// partial is false: current switches only by one rename.
func (a *archiveInstaller) partial() bool { return false }

// open opens TARGET (creating it) through the allowed target, then
// TARGET/releases (creating it; a symlink or file there is refused), reads
// the installer's state, removes what interrupted runs left (staging
// directories it recorded, temporary current links) and refuses a
// TARGET/current that fleetcast did not make.
func (a *archiveInstaller) open() (err error) {
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	if a.dir, err = openTargetDir(a.r.req.AllowedTargets, a.target, true); err != nil {
		return err
	}
	if a.st, err = loadArchiveState(a.r.req.StateDir, a.target); err != nil {
		return err
	}
	if err := a.checkCurrent(); err != nil {
		return err
	}
	if a.releases, err = openSubdir(a.dir, releasesDir, true); err != nil {
		return err
	}
	if err := a.removeStale(); err != nil {
		return err
	}
	a.adoptPrevious()
	return nil
}

// close releases the handles open took.
func (a *archiveInstaller) close() {
	for _, d := range []**targetDir{&a.releases, &a.dir} {
		if *d != nil {
			(*d).Close()
			*d = nil
		}
	}
}

// checkCurrent refuses a TARGET/current that is not a symlink to
// releases/<version>, the only thing fleetcast puts there.
func (a *archiveInstaller) checkCurrent() error {
	fi, err := lstatIn(a.dir, currentLink)
	if err != nil || fi == nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return notOurs(a.dir, currentLink, fi, "a symbolic link to releases/<version>")
	}
	if _, err := a.current(); err != nil {
		return err
	}
	return nil
}

// removeStale removes the staging directories the state records (left by
// interrupted unpacks) and the temporary current links of interrupted
// switches (symlinks only: removing a link never touches what it points
// to). Anything else is left alone, with a warning.
func (a *archiveInstaller) removeStale() error {
	for _, name := range a.st.Staging {
		a.r.log.Info("removing leftover", slog.String("path", a.releases.join(name)), slog.String("reason", "an earlier run was interrupted while unpacking"))
		if err := removeAllIn(a.releases.root, name); err != nil {
			return fmt.Errorf("remove leftover of an interrupted run: %w", err)
		}
	}
	if len(a.st.Staging) > 0 {
		a.st.Staging = nil
		if err := a.st.save(a.r.req.StateDir); err != nil {
			return err
		}
	}
	entries, err := readDirIn(a.dir)
	if err != nil {
		return fmt.Errorf("look for leftovers of interrupted runs in %s: %w", a.dir.path, err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), currentTmpPrefix) {
			continue
		}
		if e.Type()&fs.ModeSymlink == 0 {
			a.r.log.Warn("leaving an unknown file alone", slog.String("path", a.dir.join(e.Name())),
				slog.String("reason", "its name is that of a temporary current link, but it is not a symlink: fleetcast did not make it"))
			continue
		}
		if err := a.dir.root.Remove(e.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove leftover of an interrupted run: %w", err)
		}
	}
	return nil
}

// adoptPrevious records the previous release's directory as fleetcast's
// when the state does not list it: fleetcast installed it there with this
// installer (usablePrevious checked), before the state existed.
func (a *archiveInstaller) adoptPrevious() {
	p := a.r.prev
	if p == nil || a.st.has(p.Version) || !isDirIn(a.releases, p.Version) {
		return
	}
	a.st.Releases = append([]string{p.Version}, a.st.Releases...)
	if err := a.st.save(a.r.req.StateDir); err != nil {
		a.r.log.Warn("cannot record the previous release's directory", slog.String("reason", err.Error()))
		a.st.dropRelease(p.Version)
	}
}

// current returns the version TARGET/current points to, or "" if it does
// not exist. A link pointing elsewhere than releases/<version> is refused:
// fleetcast never makes one.
func (a *archiveInstaller) current() (string, error) {
	link, err := a.dir.root.Readlink(currentLink)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read current link: %w", err)
	}
	v, ok := strings.CutPrefix(link, releasesDir+"/")
	if !ok || !manifest.ValidVersion(v) {
		return "", fmt.Errorf("%w: %s is a symbolic link to %q, not to releases/<version> as fleetcast makes it; it is not followed or replaced (inspect it, then remove it to let fleetcast install)",
			ErrUnsafeTarget, a.dir.join(currentLink), clip.String(link, 200))
	}
	return v, nil
}

// unpack extracts artifact into releases/.<version>.tmp-*, fsyncs it and
// renames it to releases/<version>, replacing a directory of that name that
// fleetcast made (left by an interrupted or failed run). A directory of
// that name that fleetcast did not make is refused.
func (a *archiveInstaller) unpack(ctx context.Context, artifact, version string) error {
	if fi, err := lstatIn(a.releases, version); err != nil {
		return err
	} else if fi != nil && !a.st.has(version) {
		return notOurs(a.releases, version, fi, "a release directory")
	} else if fi != nil {
		a.r.log.Info("removing release directory to unpack it again", slog.String("dir", a.releases.join(version)),
			slog.String("reason", "current does not point to it: an earlier run stopped before switching, or rolled back"))
		if err := removeAllIn(a.releases.root, version); err != nil {
			return fmt.Errorf("remove old copy of the release: %w", err)
		}
	}
	name := stagingName(version, rand.Text())
	a.st.Staging = append(a.st.Staging, name)
	if err := a.st.save(a.r.req.StateDir); err != nil {
		return err
	}
	if err := a.fill(ctx, artifact, name); err != nil {
		removeAllIn(a.releases.root, name)
		return err
	}
	a.st.addRelease(version)
	if err := a.st.save(a.r.req.StateDir); err != nil {
		removeAllIn(a.releases.root, name)
		return err
	}
	if err := a.releases.root.Rename(name, version); err != nil {
		removeAllIn(a.releases.root, name)
		return fmt.Errorf("rename unpacked release into place: %w", err)
	}
	if err := a.releases.sync(); err != nil {
		return err
	}
	a.st.Staging = slices.DeleteFunc(a.st.Staging, func(s string) bool { return s == name })
	if err := a.st.save(a.r.req.StateDir); err != nil {
		return err
	}
	a.r.done("unpacked release", slog.String("dir", a.releases.join(version)), slog.String("artifact", artifact))
	return nil
}

// fill creates the staging directory name (recorded before) and extracts
// artifact into it, within the archive limits and the free space.
func (a *archiveInstaller) fill(ctx context.Context, artifact, name string) error {
	if err := a.releases.root.Mkdir(name, 0o755); err != nil {
		return fmt.Errorf("create staging directory: %w", noSpace(err))
	}
	dir, err := openSubdir(a.releases, name, false)
	if err != nil {
		return err
	}
	defer dir.Close()
	if canChmod {
		if err := dir.root.Chmod(".", 0o755); err != nil {
			return fmt.Errorf("chmod release directory: %w", err)
		}
	}
	lim := a.limits
	if lim.space == 0 {
		lim.space = a.spaceLimit(dir)
	}
	if err := extractInto(ctx, artifact, dir, lim); err != nil {
		return fmt.Errorf("unpack %s: %w", artifact, err)
	}
	return dir.sync()
}

// spaceLimit is how many bytes of data an unpack into dir may write: the
// space available less the reserve (0: unknown, unbounded).
func (a *archiveInstaller) spaceLimit(dir *targetDir) int64 {
	avail, total, err := fsSpace(dir)
	if err != nil {
		a.r.log.Warn("free space unknown; the unpack is bounded by the archive limits only", slog.String("reason", err.Error()))
		return 0
	}
	return max(avail-min(total/spaceReserveDivisor, maxSpaceReserve), 1)
}

// switchTo atomically points TARGET/current at releases/<version>: a new
// relative symlink renamed over it, then an fsync of TARGET.
func (a *archiveInstaller) switchTo(version string) error {
	link := releasesDir + "/" + version
	tmp := currentTmpPrefix + rand.Text()
	if err := a.dir.root.Symlink(link, tmp); err != nil {
		return fmt.Errorf("create current link: %w", err)
	}
	if err := a.dir.root.Rename(tmp, currentLink); err != nil {
		a.dir.root.Remove(tmp)
		return fmt.Errorf("switch current link: %w", err)
	}
	if err := a.dir.sync(); err != nil {
		return err
	}
	a.r.done("switched current", slog.String("current", a.dir.join(currentLink)), slog.String("points_to", link))
	return nil
}

// removeCurrent removes the TARGET/current link.
func (a *archiveInstaller) removeCurrent() error {
	if err := a.dir.root.Remove(currentLink); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove current link: %w", err)
	}
	if err := a.dir.sync(); err != nil {
		return err
	}
	a.r.done("removed current link", slog.String("current", a.dir.join(currentLink)), slog.String("reason", "no previous release to go back to"))
	return nil
}

// removeRelease removes the release directory of version, if fleetcast
// made it, and forgets it.
func (a *archiveInstaller) removeRelease(version string) error {
	if !a.st.has(version) {
		return nil
	}
	if err := removeAllIn(a.releases.root, version); err != nil {
		return err
	}
	a.st.dropRelease(version)
	if err := a.releases.sync(); err != nil {
		return err
	}
	return a.st.save(a.r.req.StateDir)
}

// prune removes the release directories fleetcast made beyond the newest
// KeepReleases (in the order they were unpacked, current counted first),
// never current's or the previous release's. Failures are logged, not
// returned: the install is done.
func (a *archiveInstaller) prune(current string) {
	kept := 1
	for _, v := range slices.Backward(slices.Clone(a.st.Releases)) {
		switch {
		case v == current:
			continue
		case kept < a.keep:
			kept++
			continue
		case a.r.prev != nil && v == a.r.prev.Version:
			a.r.log.Info("keeping previous release", slog.String("version", v), slog.String("reason", "rollback may need it"))
			continue
		}
		if err := a.removeRelease(v); err != nil {
			a.r.log.Warn("cannot remove old release", slog.String("dir", a.releases.join(v)), slog.String("reason", err.Error()))
			continue
		}
		a.r.done("removed old release", slog.String("dir", a.releases.join(v)),
			slog.String("reason", fmt.Sprintf("more than %d releases", a.keep)))
	}
}

// isDirIn reports whether name in d is a directory (not a symlink to one).
func isDirIn(d *targetDir, name string) bool {
	fi, err := d.root.Lstat(name)
	return err == nil && fi.IsDir()
}

// removeAllIn removes name and everything under it inside root, first
// making directories writable if removal fails (archives may hold
// read-only ones). Nothing outside root is touched: os.Root never follows
// a symlink out of it, and RemoveAll removes links, not what they point to.
func removeAllIn(root *os.Root, name string) error {
	if err := root.RemoveAll(name); err == nil {
		return nil
	}
	sub, err := root.OpenRoot(name)
	if err == nil {
		fs.WalkDir(sub.FS(), ".", func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				if fi, err := d.Info(); err == nil {
					sub.Chmod(p, fi.Mode().Perm()|0o700)
				}
			}
			return nil
		})
		sub.Close()
	}
	return root.RemoveAll(name)
}
