package agent

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// preallocate reserves size bytes for f, so that a full disk is found before
// any chunk is fetched rather than in the middle of a download.
func preallocate(f *os.File, size int64) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if size == 0 {
		return nil
	}
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return f.Truncate(size)
	}
	return err
}
