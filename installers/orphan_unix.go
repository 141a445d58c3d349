//go:build unix

package installers

import (
	"errors"
	"os"
	"syscall"
)

// groupAlive reports whether a process of the process group pgid runs:
// a zombie, which init may never reap in a container, does not count.
func groupAlive(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	return liveMember(pgid)
}

// signalGroup sends SIGTERM (SIGKILL when force) to the process group pgid.
func signalGroup(pgid int, force bool) error {
	sig := syscall.SIGTERM
	if force {
		sig = syscall.SIGKILL
	}
	if pgid <= 1 {
		return errors.New("refusing to signal process group <= 1")
	}
	if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// isSelf reports whether pid is this process or its process group.
func isSelf(pid int) bool {
	return pid == os.Getpid() || pid == syscall.Getpgrp()
}
