//go:build unix

package installers

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// isNoSpace reports whether err says the file system is full or the
// user's quota is used up.
func isNoSpace(err error) bool {
	return errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT)
}

// fsSpace returns the bytes available to the agent and the total size of
// the file system that holds d.
func fsSpace(d *targetDir) (avail, total int64, err error) {
	f, err := d.root.Open(".")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", d.path, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), int64(st.Blocks) * int64(st.Bsize), nil
}
