//go:build unix

package installers

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"syscall"
)

// canChmod: Unix file modes are applied as given.
const canChmod = true

// killProcessGroupOnCancel starts cmd in a process group of its own and
// makes cancellation (timeout) kill the whole group, so that children the
// command started do not outlive it. Every command (install, rollback,
// health check) runs through it; the group id is the command's pid, which
// is what the command record names (orphan.go).
func killProcessGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
}

// copyOwner gives f the owner and group of the file info from, when running
// as root (only root can give files away). Call it before chmod: chown
// clears setuid and setgid bits.
func copyOwner(f *os.File, from fs.FileInfo) error {
	st, ok := from.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 {
		return nil
	}
	return f.Chown(int(st.Uid), int(st.Gid))
}

// archiveSupported reports whether the archive installer works here.
func archiveSupported() error { return nil }
