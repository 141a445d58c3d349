//go:build !windows

package fleettls

import (
	"fmt"
	"io/fs"
)

// checkMode refuses a secret file readable or writable by group or others:
// anyone who can read it is a member of the fleet.
func checkMode(path string, mode fs.FileMode) error {
	if mode.Perm()&0o077 != 0 {
		return fmt.Errorf("fleet secret %s: accessible by group or others (mode %04o): whoever reads it joins the fleet; chmod 600 %s", path, mode.Perm(), path)
	}
	return nil
}
