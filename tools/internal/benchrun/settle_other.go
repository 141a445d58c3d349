//go:build !unix || aix

package benchrun

import "os/exec"

// Settle runs the sync command where Go has no sync(2) call. Where there is
// no such command (Windows, unless one is installed), the runs are not
// settled.
func Settle() {
	exec.Command("sync").Run()
}
