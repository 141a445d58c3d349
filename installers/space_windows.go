package installers

import (
	"errors"
	"syscall"
)

// isNoSpace reports whether err says the disk is full.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.Errno(112)) // ERROR_DISK_FULL
}

// fsSpace is not implemented on Windows, where the archive installer is not
// supported.
func fsSpace(*targetDir) (avail, total int64, err error) { return 0, 0, errors.ErrUnsupported }
