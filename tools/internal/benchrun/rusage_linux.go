package benchrun

import (
	"os"
	"syscall"
)

// maxRSS returns the peak resident set size of a finished process in bytes.
func maxRSS(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss << 10 // Linux reports KiB
	}
	return 0
}
