package installers

import (
	"cmp"
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
	"time"

	"github.com/fleetcast/fleetcast/internal/atomicfile"
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

// archiveInstaller unpacks an archive and switches TARGET/current to it.
type archiveInstaller struct {
	r        *run
	target   string
	releases string
	keep     int
	limits   extractLimits
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
	target := filepath.Clean(n.Install.Target)
	keep := r.req.KeepReleases
	if keep <= 0 {
		keep = DefaultKeepReleases
	}
	return &archiveInstaller{r: r, target: target, releases: filepath.Join(target, releasesDir),
		keep: keep, limits: r.req.limits.orDefault()}, nil
}

// install unpacks the new release unless current already points to it
// (an earlier run got that far), switches current to it and prunes.
func (a *archiveInstaller) install(ctx context.Context) error {
	v := a.r.req.New.Version
	if err := a.prepare(); err != nil {
		return err
	}
	cur, err := a.current()
	if err != nil {
		return err
	}
	if cur == v && isDir(a.releaseDir(v)) {
		a.r.done("release already unpacked", slog.String("dir", a.releaseDir(v)),
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
	if err := a.prepare(); err != nil {
		return err
	}
	if p := a.r.prev; p != nil {
		if !isDir(a.releaseDir(p.Version)) {
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
	if err := removeTree(a.releaseDir(newV)); err != nil {
		return fmt.Errorf("remove the failed release: %w", err)
	}
	a.r.done("removed failed release", slog.String("dir", a.releaseDir(newV)))
	return atomicfile.SyncDir(a.releases)
}

// partial is false: current switches only by one rename.
func (a *archiveInstaller) partial() bool { return false }

func (a *archiveInstaller) releaseDir(version string) string {
	return filepath.Join(a.releases, version)
}

// prepare creates TARGET/releases, removes what interrupted runs left
// (temporary release directories and links) and refuses a TARGET/current
// that is not a symlink.
func (a *archiveInstaller) prepare() error {
	if err := atomicfile.MkdirAll(a.releases, 0o755); err != nil {
		return fmt.Errorf("create releases directory: %w", err)
	}
	if err := a.removeStale(); err != nil {
		return err
	}
	fi, err := os.Lstat(filepath.Join(a.target, currentLink))
	if err == nil && fi.Mode()&fs.ModeSymlink == 0 {
		return fmt.Errorf("%s exists and is not a symlink: the archive installer will not replace it", filepath.Join(a.target, currentLink))
	}
	return nil
}

// removeStale removes TARGET/current.tmp-* and TARGET/releases/.*.tmp-*.
func (a *archiveInstaller) removeStale() error {
	for _, d := range []struct {
		dir   string
		stale func(name string) bool
	}{
		{a.target, func(n string) bool { return strings.HasPrefix(n, currentTmpPrefix) }},
		{a.releases, func(n string) bool { return strings.HasPrefix(n, ".") && strings.Contains(n, releaseTmpInfix) }},
	} {
		entries, err := os.ReadDir(d.dir)
		if err != nil {
			return fmt.Errorf("look for leftovers of interrupted runs: %w", err)
		}
		for _, e := range entries {
			if !d.stale(e.Name()) {
				continue
			}
			p := filepath.Join(d.dir, e.Name())
			a.r.log.Info("removing leftover", slog.String("path", p), slog.String("reason", "an earlier run was interrupted"))
			if err := removeTree(p); err != nil {
				return fmt.Errorf("remove leftover of an interrupted run: %w", err)
			}
		}
	}
	return nil
}

// current returns the version TARGET/current points to, or "" if it does
// not exist or points elsewhere than releases/<version>.
func (a *archiveInstaller) current() (string, error) {
	link, err := os.Readlink(filepath.Join(a.target, currentLink))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read current link: %w", err)
	}
	v, ok := strings.CutPrefix(link, releasesDir+"/")
	if !ok || !manifest.ValidVersion(v) {
		a.r.log.Warn("current link points outside the releases", slog.String("link", link),
			slog.String("reason", "not set by fleetcast; it will be replaced"))
		return "", nil
	}
	return v, nil
}

// unpack extracts artifact into releases/.<version>.tmp-*, fsyncs it and
// renames it to releases/<version>, replacing a directory of that name that
// current does not point to (left by an interrupted or failed run).
func (a *archiveInstaller) unpack(ctx context.Context, artifact, version string) error {
	dir := a.releaseDir(version)
	if exists(dir) {
		a.r.log.Info("removing release directory to unpack it again", slog.String("dir", dir),
			slog.String("reason", "current does not point to it: an earlier run stopped before switching, or rolled back"))
		if err := removeTree(dir); err != nil {
			return fmt.Errorf("remove old copy of the release: %w", err)
		}
	}
	tmp, err := os.MkdirTemp(a.releases, "."+version+releaseTmpInfix+"*")
	if err != nil {
		return fmt.Errorf("create temporary release directory: %w", err)
	}
	if err := a.fill(ctx, artifact, tmp); err != nil {
		removeTree(tmp)
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		removeTree(tmp)
		return fmt.Errorf("rename unpacked release into place: %w", err)
	}
	if err := atomicfile.SyncDir(a.releases); err != nil {
		return err
	}
	a.r.done("unpacked release", slog.String("dir", dir), slog.String("artifact", artifact))
	return nil
}

// fill extracts artifact into the new directory tmp and stamps its
// modification time, which orders releases for pruning.
func (a *archiveInstaller) fill(ctx context.Context, artifact, tmp string) error {
	if canChmod {
		if err := os.Chmod(tmp, 0o755); err != nil {
			return fmt.Errorf("chmod release directory: %w", err)
		}
	}
	if err := extractArchive(ctx, artifact, tmp, a.limits); err != nil {
		return fmt.Errorf("unpack %s: %w", artifact, err)
	}
	now := time.Now()
	if err := os.Chtimes(tmp, now, now); err != nil {
		return fmt.Errorf("stamp release directory: %w", err)
	}
	return atomicfile.SyncDir(tmp)
}

// switchTo atomically points TARGET/current at releases/<version>: a new
// relative symlink renamed over it, then an fsync of TARGET.
func (a *archiveInstaller) switchTo(version string) error {
	link := releasesDir + "/" + version
	tmp := filepath.Join(a.target, currentTmpPrefix+rand.Text())
	if err := os.Symlink(link, tmp); err != nil {
		return fmt.Errorf("create current link: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(a.target, currentLink)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("switch current link: %w", err)
	}
	if err := atomicfile.SyncDir(a.target); err != nil {
		return err
	}
	a.r.done("switched current", slog.String("current", filepath.Join(a.target, currentLink)), slog.String("points_to", link))
	return nil
}

// removeCurrent removes the TARGET/current link.
func (a *archiveInstaller) removeCurrent() error {
	p := filepath.Join(a.target, currentLink)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove current link: %w", err)
	}
	if err := atomicfile.SyncDir(a.target); err != nil {
		return err
	}
	a.r.done("removed current link", slog.String("current", p), slog.String("reason", "no previous release to go back to"))
	return nil
}

// prune removes release directories beyond the newest KeepReleases (by
// modification time, current counted first), never current's or the
// previous release's. Failures are logged, not returned: the install is done.
func (a *archiveInstaller) prune(current string) {
	old, err := a.releasesByAge()
	if err != nil {
		a.r.log.Warn("cannot prune old releases", slog.String("reason", err.Error()))
		return
	}
	kept := 1
	for _, v := range old {
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
		if err := removeTree(a.releaseDir(v)); err != nil {
			a.r.log.Warn("cannot remove old release", slog.String("dir", a.releaseDir(v)), slog.String("reason", err.Error()))
			continue
		}
		a.r.done("removed old release", slog.String("dir", a.releaseDir(v)),
			slog.String("reason", fmt.Sprintf("more than %d releases", a.keep)))
	}
}

// releasesByAge lists the release directories, newest first.
func (a *archiveInstaller) releasesByAge() ([]string, error) {
	entries, err := os.ReadDir(a.releases)
	if err != nil {
		return nil, err
	}
	type rel struct {
		name  string
		mtime time.Time
	}
	var rels []rel
	for _, e := range entries {
		if !e.IsDir() || !manifest.ValidVersion(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		rels = append(rels, rel{e.Name(), fi.ModTime()})
	}
	slices.SortFunc(rels, func(x, y rel) int {
		return cmp.Or(y.mtime.Compare(x.mtime), strings.Compare(y.name, x.name))
	})
	names := make([]string, len(rels))
	for i, r := range rels {
		names[i] = r.name
	}
	return names, nil
}

// isDir reports whether path is a directory (not a symlink to one).
func isDir(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.IsDir()
}

// removeTree removes path and everything under it, first making
// directories writable if removal fails (archives may hold read-only ones).
func removeTree(path string) error {
	if err := os.RemoveAll(path); err == nil {
		return nil
	}
	filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			if fi, err := d.Info(); err == nil {
				os.Chmod(p, fi.Mode().Perm()|0o700)
			}
		}
		return nil
	})
	return os.RemoveAll(path)
}
