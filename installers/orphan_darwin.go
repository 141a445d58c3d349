package installers

import (
	"io/fs"
	"strconv"

	"golang.org/x/sys/unix"
)

// darwinZombie is SZOMB, the p_stat of a zombie (sys/proc.h).
const darwinZombie = 5

// bootID identifies this boot, or "" if unknown.
func bootID() string {
	id, err := unix.Sysctl("kern.bootsessionuuid")
	if err != nil {
		return ""
	}
	return id
}

// procStart returns the start time of process pid (seconds.microseconds),
// as the kernel reports it.
func procStart(pid int) (string, error) {
	procs, err := unix.SysctlKinfoProcSlice("kern.proc.pid", pid)
	if err != nil {
		return "", err
	}
	if len(procs) == 0 {
		return "", fs.ErrNotExist
	}
	t := procs[0].Proc.P_starttime
	return strconv.FormatInt(int64(t.Sec), 10) + "." + strconv.FormatInt(int64(t.Usec), 10), nil
}

// liveMember reports whether a process that is not a zombie is in the
// process group pgid. If the system cannot list it, it trusts kill.
func liveMember(pgid int) bool {
	procs, err := unix.SysctlKinfoProcSlice("kern.proc.pgrp", pgid)
	if err != nil {
		return true
	}
	for _, p := range procs {
		if p.Proc.P_stat != darwinZombie {
			return true
		}
	}
	return false
}
