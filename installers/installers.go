// Package installers puts a verified release in place on this machine and
// takes it out again when its health check fails. Three installers exist,
// named by a manifest's install.installer (docs/INSTALLERS.md):
//
//   - file: the artifact replaces one file, atomically (temp file, fsync,
//     rename, fsync of the directory);
//   - archive: the artifact (tar, tar.gz or zip) is unpacked into
//     TARGET/releases/<version> and the symlink TARGET/current is switched
//     to it atomically;
//   - command: an argument vector is run, without a shell.
//
// Every step can be interrupted at any moment (the agent may be killed) and
// Install called again with the same request: the target is then either
// entirely the old release or entirely the new one. Install must not run
// concurrently for the same target.
package installers

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/fleetcast/fleetcast/manifest"
)

// Defaults for the zero values of Request's limits.
const (
	DefaultCommandTimeout = 10 * time.Minute
	DefaultHealthTimeout  = time.Minute
	DefaultKeepReleases   = 3
)

// Step names reported in Error.Step.
const (
	stepValidate    = "validate"
	stepInstall     = "install"
	stepHealthCheck = "health-check"
)

// ErrHealthCheck is wrapped by the error Install returns when the new
// release's health check failed (after the rollback attempt): the release is
// bad and must not be installed again.
var ErrHealthCheck = errors.New("health check failed")

// ErrUnsafeArchive is wrapped when an archive holds an entry that would land
// outside its release directory, an unsupported entry type (devices, fifos,
// sockets), or more than the limits allow. Nothing has been switched.
var ErrUnsafeArchive = errors.New("unsafe archive")

// ErrUnsafeTarget is wrapped when the target, or a path the installer
// manages below it (releases, current, a staging or temporary path), is not
// what fleetcast made (a symlink where a directory belongs, a link pointing
// elsewhere, another file type) or leads outside the allowed targets.
// Nothing outside the target was touched and nothing was switched. It is
// not a verdict on the release: once the operator repairs the target, the
// same release installs.
var ErrUnsafeTarget = errors.New("unsafe target")

// ErrNoSpace is wrapped when the release does not fit on the target's file
// system: its unpacked size passes the free space (less a reserve), or a
// write failed for want of space. What was written for it is removed and
// nothing was switched. Retrying at once would fill the disk again: callers
// back off, or wait for a newer release.
var ErrNoSpace = errors.New("release does not fit on the target's file system")

// Error is the error Install returns, as *Error, for any failure.
type Error struct {
	Step       string // "validate", "install" or "health-check"
	RolledBack bool   // whether the previous release (or original state) was put back
	// Unchanged reports that the installer failed before it changed the
	// target (the file and archive installers change it by one rename), so
	// there was nothing to roll back.
	Unchanged bool
	Err       error
}

func (e *Error) Error() string {
	switch {
	case e.RolledBack:
		return fmt.Sprintf("install step %s: %v (rolled back to the previous release)", e.Step, e.Err)
	case e.Unchanged:
		return fmt.Sprintf("install step %s: %v (the target was not changed)", e.Step, e.Err)
	case errors.Is(e.Err, errNoRollbackCommand):
		return fmt.Sprintf("install step %s: %v", e.Step, e.Err) // which says it
	}
	return fmt.Sprintf("install step %s: %v (not rolled back)", e.Step, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Release is one verified release the agent holds.
type Release struct {
	Sequence uint64
	// Version is the manifest version string, safe for file names.
	Version string
	// Artifact is the absolute path of the verified artifact, kept by the
	// agent. Installers never modify, move or delete it.
	Artifact string
	Install  manifest.Install
}

// Request is one install.
type Request struct {
	manifest.ChannelID // the subscription: Product and Channel
	New                Release
	// Previous is the release fleetcast installed before (its artifact
	// still present), or nil. The file and archive installers use it for
	// rollback only when it was installed by the same installer at the
	// same target; otherwise they treat New as a first install.
	Previous *Release
	// AllowedTargets are the absolute path prefixes the file and archive
	// installers may write below (the agent's allowed_targets). Install
	// opens the prefix that holds the target and does every file operation
	// through that handle, so that nothing swapped or planted below it can
	// lead outside; a target under none of them fails with
	// ErrUnsafeTarget. Required for file and archive.
	AllowedTargets []string
	// StateDir is an existing private directory for this subscription's
	// installer state (the file installer keeps the original file there).
	StateDir string
	// CommandTimeout bounds install and rollback commands (0: 10m).
	CommandTimeout time.Duration
	// HealthTimeout bounds the health check (0: 1m).
	HealthTimeout time.Duration
	// KeepReleases is how many TARGET/releases/<version> directories the
	// archive installer keeps, the current one included (0: 3). Previous's
	// is always kept.
	KeepReleases int
	// Log receives every step with its reason. Nil discards.
	Log *slog.Logger

	// limits replaces the archive limits in tests; zero means the defaults.
	limits extractLimits
}

// Result summarizes what Install did, one line per step.
type Result struct {
	Steps []string
}

// installer is one way of putting a release in place.
type installer interface {
	// install puts req.New in place. On error the target is unchanged,
	// unless partial reports otherwise.
	install(ctx context.Context) error
	// rollback puts the previous release (or the original state) back.
	rollback(ctx context.Context) error
	// partial reports whether a failed install may have changed the
	// target, so that rollback is needed (commands).
	partial() bool
}

// run is the state of one Install call.
type run struct {
	req    *Request
	log    *slog.Logger
	result *Result
	prev   *Release // Previous when usable for rollback, else nil
}

// Install installs req.New, runs its health check if it has one, and rolls
// back when the health check fails. The returned Result lists the steps done,
// also on error. Errors are *Error; errors.Is(err, ErrHealthCheck) reports a
// bad release, any other error is worth retrying with the same request.
func Install(ctx context.Context, req *Request) (*Result, error) {
	r, err := newRun(req)
	if err != nil {
		return r.result, &Error{Step: stepValidate, Unchanged: true, Err: err}
	}
	inst, err := r.installer()
	if err != nil {
		return r.result, &Error{Step: stepValidate, Unchanged: true, Err: err}
	}
	// A command of an earlier run (an agent killed mid-install) must be
	// gone before this run changes the same target (orphan.go).
	if err := r.awaitOrphan(ctx); err != nil {
		return r.result, &Error{Step: stepInstall, Unchanged: true, Err: err}
	}
	if err := inst.install(ctx); err != nil {
		return r.result, r.installFailed(ctx, inst, err)
	}
	if err := r.healthCheck(ctx); err != nil {
		return r.result, r.healthFailed(ctx, inst, err)
	}
	r.done("release installed", slog.String("reason", "install and health check succeeded"))
	return r.result, nil
}

// newRun checks req and fills in defaults. The returned run is never nil.
func newRun(req *Request) (*run, error) {
	r := &run{req: req, result: &Result{}, log: slog.New(slog.DiscardHandler)}
	if req == nil {
		return r, errors.New("nil request")
	}
	if req.Log != nil {
		r.log = req.Log
	}
	// The caller's logger names the product, channel and release.
	r.log = r.log.With(slog.String("installer", req.New.Install.Installer))
	if err := validateRelease("new release", &req.New); err != nil {
		return r, err
	}
	if req.Previous != nil {
		if err := validateRelease("previous release", req.Previous); err != nil {
			return r, err
		}
	}
	r.prev = r.usablePrevious()
	return r, nil
}

// validateRelease checks what the installers rely on: a file-name-safe
// version, valid install instructions, an absolute artifact path and, for
// file and archive, an absolute target.
func validateRelease(what string, rel *Release) error {
	if !manifest.ValidVersion(rel.Version) {
		return fmt.Errorf("%s: version %q is not a valid manifest version", what, rel.Version)
	}
	if err := rel.Install.Validate(); err != nil {
		return fmt.Errorf("%s: install instructions: %w", what, err)
	}
	if !filepath.IsAbs(rel.Artifact) {
		return fmt.Errorf("%s: artifact path %q is not absolute", what, rel.Artifact)
	}
	if rel.Install.Installer != manifest.InstallerCommand && !filepath.IsAbs(rel.Install.Target) {
		return fmt.Errorf("%s: target %q is not an absolute path", what, rel.Install.Target)
	}
	return nil
}

// usablePrevious returns Previous if rollback can restore it with New's
// installer and target, else nil. The command installer takes Previous as
// it is: its rollback command decides what to do with it.
func (r *run) usablePrevious() *Release {
	p, n := r.req.Previous, &r.req.New
	if p == nil || n.Install.Installer == manifest.InstallerCommand {
		return p
	}
	if p.Install.Installer != n.Install.Installer ||
		filepath.Clean(p.Install.Target) != filepath.Clean(n.Install.Target) {
		r.log.Warn("previous release not used for rollback",
			slog.String("reason", "it was installed by another installer or at another target"),
			slog.String("previous_installer", p.Install.Installer),
			slog.String("previous_target", p.Install.Target))
		return nil
	}
	return p
}

// installer returns the installer req.New names.
func (r *run) installer() (installer, error) {
	switch r.req.New.Install.Installer {
	case manifest.InstallerFile:
		return newFileInstaller(r)
	case manifest.InstallerArchive:
		return newArchiveInstaller(r)
	case manifest.InstallerCommand:
		return &commandInstaller{r: r}, nil
	}
	return nil, fmt.Errorf("unknown installer %q", r.req.New.Install.Installer)
}

// installFailed rolls back after a failed install if the installer may have
// changed the target, and builds the error.
func (r *run) installFailed(ctx context.Context, inst installer, err error) error {
	r.log.Error("install failed", slog.String("reason", err.Error()))
	if !inst.partial() {
		return &Error{Step: stepInstall, Unchanged: true, Err: err}
	}
	if ctx.Err() != nil {
		return &Error{Step: stepInstall, Err: err}
	}
	if rbErr := r.rollback(ctx, inst); rbErr != nil {
		return &Error{Step: stepInstall, Err: withRollbackFailure(err, rbErr)}
	}
	return &Error{Step: stepInstall, RolledBack: true, Err: err}
}

// healthFailed rolls back after a failed health check. An interrupted check
// (ctx done) is no verdict on the release: nothing is rolled back and the
// error does not wrap ErrHealthCheck, so the install is tried again. The
// same holds when the rollback is interrupted.
func (r *run) healthFailed(ctx context.Context, inst installer, err error) error {
	if ctx.Err() != nil {
		r.log.Warn("health check interrupted", slog.String("reason", err.Error()))
		return &Error{Step: stepHealthCheck, Err: err}
	}
	r.log.Error("health check failed, rolling back", slog.String("reason", err.Error()))
	rbErr := r.rollback(ctx, inst)
	if rbErr != nil && ctx.Err() != nil {
		// Not recorded as a bad release: the next attempt installs,
		// checks and rolls back again.
		return &Error{Step: stepHealthCheck, Err: fmt.Errorf("health check failed (%v), but the rollback was interrupted: %w", err, rbErr)}
	}
	if rbErr != nil {
		return &Error{Step: stepHealthCheck, Err: withRollbackFailure(fmt.Errorf("%w: %w", ErrHealthCheck, err), rbErr)}
	}
	return &Error{Step: stepHealthCheck, RolledBack: true, Err: fmt.Errorf("%w: %w", ErrHealthCheck, err)}
}

// withRollbackFailure adds to err why rollback did not happen.
func withRollbackFailure(err, rbErr error) error {
	if errors.Is(rbErr, errNoRollbackCommand) {
		return fmt.Errorf("%w; %w", err, rbErr)
	}
	return fmt.Errorf("%w; rollback failed, the new release may still be in place: %w", err, rbErr)
}

// rollback runs inst's rollback and logs the outcome.
func (r *run) rollback(ctx context.Context, inst installer) error {
	if err := inst.rollback(ctx); err != nil {
		r.log.Error("rollback failed", slog.String("reason", err.Error()))
		return err
	}
	r.done("rolled back", slog.String("reason", "the new release failed"))
	return nil
}

// healthCheck runs the new release's health check, if it has one.
func (r *run) healthCheck(ctx context.Context) error {
	argv := r.req.New.Install.HealthCheck
	if len(argv) == 0 {
		r.done("no health check", slog.String("reason", "the manifest names none"))
		return nil
	}
	argv = substitute(argv, r.req.New.Artifact, r.req.New.Version)
	if err := r.runCommand(ctx, "health check", argv, timeoutOr(r.req.HealthTimeout, DefaultHealthTimeout)); err != nil {
		return err
	}
	r.done("health check passed", slog.Any("argv", argv))
	return nil
}

// done logs a completed step and adds it to the result.
func (r *run) done(msg string, attrs ...slog.Attr) {
	r.log.LogAttrs(context.Background(), slog.LevelInfo, msg, attrs...)
	var b strings.Builder
	b.WriteString(msg)
	for _, a := range attrs {
		if a.Key == "reason" {
			continue
		}
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.result.Steps = append(r.result.Steps, b.String())
}

// timeoutOr returns d, or def if d is not positive.
func timeoutOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// parseMode turns a manifest mode ("0755", "04755"; "" for def) into a
// FileMode with Go's setuid, setgid and sticky bits.
func parseMode(s string, def fs.FileMode) (fs.FileMode, error) {
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return 0, fmt.Errorf("mode %q is not an octal permission", s)
	}
	m := fs.FileMode(v & 0o777)
	for bit, mode := range map[uint64]fs.FileMode{0o4000: fs.ModeSetuid, 0o2000: fs.ModeSetgid, 0o1000: fs.ModeSticky} {
		if v&bit != 0 {
			m |= mode
		}
	}
	return m, nil
}
