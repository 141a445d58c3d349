//go:build unix && !aix

package benchrun

import "syscall"

// Settle flushes what earlier runs left dirty (and the discards of their
// deleted files) so that no run pays for another's writeback.
func Settle() {
	syscall.Sync()
}
