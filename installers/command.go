package installers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"time"
)

const (
	// maxOutput is how much of a command's combined stdout and stderr is
	// kept for the log: the last 64 KiB.
	maxOutput = 64 << 10
	// maxErrorLine bounds the output line quoted in an error.
	maxErrorLine = 256
	// pipeWaitDelay is how long a command's output pipe may stay open after
	// the command exited (held by a background process it started) before
	// it is closed, and how long a killed command may take to go away.
	pipeWaitDelay = 5 * time.Second
)

// errNoRollbackCommand: the command installer cannot roll back.
var errNoRollbackCommand = errors.New("the manifest has no rollback command, so nothing was rolled back")

// commandInstaller runs the manifest's install command.
type commandInstaller struct {
	r *run
}

var _ installer = (*commandInstaller)(nil)

func (c *commandInstaller) install(ctx context.Context) error {
	req := c.r.req
	argv := substitute(req.New.Install.Command, req.New.Artifact, req.New.Version)
	if err := c.r.runCommand(ctx, "install command", argv, timeoutOr(req.CommandTimeout, DefaultCommandTimeout)); err != nil {
		return err
	}
	c.r.done("install command succeeded", slog.Any("argv", argv))
	return nil
}

// rollback runs the new release's rollback command with the previous
// release's artifact and version, or the new release's when there is no
// previous release.
func (c *commandInstaller) rollback(ctx context.Context) error {
	req := c.r.req
	if len(req.New.Install.RollbackCommand) == 0 {
		c.r.log.Warn("cannot roll back", slog.String("reason", "the manifest has no rollback command"))
		return errNoRollbackCommand
	}
	artifact, version := req.New.Artifact, req.New.Version
	if p := req.Previous; p != nil {
		artifact, version = p.Artifact, p.Version
	}
	argv := substitute(req.New.Install.RollbackCommand, artifact, version)
	return c.r.runCommand(ctx, "rollback command", argv, timeoutOr(req.CommandTimeout, DefaultCommandTimeout))
}

// partial is true: a failed command may have changed the system.
func (c *commandInstaller) partial() bool { return true }

// substitute replaces the placeholders {artifact} and {version} in every
// argument, in one pass (a replacement is never substituted again).
func substitute(argv []string, artifact, version string) []string {
	r := strings.NewReplacer("{artifact}", artifact, "{version}", version)
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = r.Replace(a)
	}
	return out
}

// runCommand runs argv without a shell, in its own process group, with
// stdin from the null device and the end of its output logged. A command
// still running after timeout is killed with its whole process group.
// While it runs, it is recorded in StateDir (orphan.go); it does not start
// while a command recorded by an earlier, killed agent still runs.
func (r *run) runCommand(ctx context.Context, what string, argv []string, timeout time.Duration) error {
	if err := r.awaitOrphan(ctx); err != nil {
		return fmt.Errorf("%s %q not started: %w", what, argv[0], err)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := &tailBuffer{max: maxOutput}
	cmd := exec.CommandContext(cctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = pipeWaitDelay
	killProcessGroupOnCancel(cmd)
	r.log.Info("running command", slog.String("what", what), slog.Any("argv", argv), slog.Duration("timeout", timeout))
	rec := r.recordCommand(what, argv, timeout)
	start := time.Now()
	err := cmd.Start()
	if err == nil {
		r.recordStarted(rec, cmd.Process.Pid)
		err = cmd.Wait()
	}
	r.forgetCommand(rec)
	r.log.Info("command ended", slog.String("what", what), slog.Duration("duration", time.Since(start)),
		slog.String("state", stateString(cmd)), slog.String("output", out.String()))
	if err == nil {
		return nil
	}
	if errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success() {
		r.log.Warn("command left its output open", slog.String("what", what),
			slog.String("reason", "it exited successfully but a process it started still holds stdout or stderr; output after its exit is lost"))
		return nil
	}
	return commandError(ctx, cctx, what, argv, timeout, err, out)
}

// commandError says why a command failed: interrupted, timed out, exited
// with a status (quoting its last output line), or could not start.
func commandError(ctx, cctx context.Context, what string, argv []string, timeout time.Duration, err error, out *tailBuffer) error {
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s %q interrupted: %w", what, argv[0], ctx.Err())
	case cctx.Err() != nil:
		return fmt.Errorf("%s %q still running after %v: killed it and its process group%s", what, argv[0], timeout, out.lastLine())
	case errors.As(err, &exitErr):
		return fmt.Errorf("%s %q failed (%v)%s", what, argv[0], exitErr.ProcessState, out.lastLine())
	}
	return fmt.Errorf("%s %q could not run: %w", what, argv[0], err)
}

// stateString describes how cmd ended, for the log.
func stateString(cmd *exec.Cmd) string {
	if cmd.ProcessState == nil {
		return "not started"
	}
	return cmd.ProcessState.String()
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu   sync.Mutex
	max  int
	buf  []byte
	lost bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
		t.lost = true
	}
	return len(p), nil
}

// String returns the kept output, marked when its start was dropped.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if len(b) > t.max {
		b, t.lost = b[len(b)-t.max:], true
	}
	if t.lost {
		return "[earlier output dropped]..." + string(b)
	}
	return string(b)
}

// lastLine returns ": " and the last non-empty output line (clipped), or "".
func (t *tailBuffer) lastLine() string {
	t.mu.Lock()
	b := bytes.TrimRight(t.buf, "\r\n\t ")
	t.mu.Unlock()
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	if len(b) == 0 {
		return ""
	}
	if len(b) > maxErrorLine {
		b = b[len(b)-maxErrorLine:]
	}
	return fmt.Sprintf("; last output line: %q", b)
}
