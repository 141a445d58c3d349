//go:build !windows

package main

import (
	"fmt"
	"io"
	"io/fs"
)

// warnKeyFileMode warns when a private key file is accessible to group or
// others: anyone who can read it can try passphrases offline, or sign with
// it outright if it is unencrypted.
func warnKeyFileMode(w io.Writer, path string, mode fs.FileMode) {
	if mode.Perm()&0o077 != 0 {
		fmt.Fprintf(w, "warning: key file %s is readable by group or others (mode %04o): chmod 600 %s\n", path, mode.Perm(), path)
	}
}
