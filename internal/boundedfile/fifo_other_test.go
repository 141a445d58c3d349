//go:build !unix

package boundedfile

import "testing"

// mkfifo returns "": no named pipes in the file system here.
func mkfifo(*testing.T, string) string { return "" }
