//go:build unix && !linux && !darwin

package installers

import (
	"errors"
	"fmt"
)

// bootID is unknown on this platform.
func bootID() string { return "" }

// procStart is not implemented here: a recorded command is waited for up
// to its deadline but not killed, since another process may have reused
// its pid.
func procStart(int) (string, error) {
	return "", fmt.Errorf("process start time: %w", errors.ErrUnsupported)
}

// liveMember trusts kill, which found a process in the group (a zombie
// counts).
func liveMember(int) bool { return true }
