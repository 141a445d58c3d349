package installers

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// bootIDFile changes at every boot.
const bootIDFile = "/proc/sys/kernel/random/boot_id"

// bootID identifies this boot, or "" if unknown.
func bootID() string {
	b, err := os.ReadFile(bootIDFile)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// procStat holds the fields of /proc/PID/stat that fleetcast reads.
type procStat struct {
	state byte   // field 3: R, S, D, Z, ...
	pgrp  int    // field 5
	start string // field 22: start time in clock ticks after boot
}

// readProcStat reads /proc/PID/stat; fs.ErrNotExist when pid does not exist.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	// The command name, field 2, is in parentheses and may hold anything.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	pgrp, err := strconv.Atoi(f[2])
	if err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: process group %q", pid, f[2])
	}
	return procStat{state: f[0][0], pgrp: pgrp, start: f[19]}, nil
}

// procStart returns the start time of process pid (a zombie too), as the
// kernel reports it.
func procStart(pid int) (string, error) {
	st, err := readProcStat(pid)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fs.ErrNotExist
	}
	return st.start, err
}

// liveMember reports whether a process that is not a zombie is in the
// process group pgid. Without /proc it trusts kill, which found one.
func liveMember(pgid int) bool {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readProcStat(pid)
		if err == nil && st.pgrp == pgid && st.state != 'Z' && st.state != 'X' {
			return true
		}
	}
	return false
}
