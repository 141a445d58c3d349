package swarm

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

// startWriteback asks the kernel to start writing a finished range of f to
// disk now, without waiting, so that the fsync at the end of an assembly
// finds little left to write.
func startWriteback(f *os.File, off, n int64) {
	unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
