// Package filelock takes exclusive OS file locks that die with their process,
// so a crashed publisher or agent never leaves anything locked.
package filelock

import "errors"

// ErrLocked: another process holds the lock.
var ErrLocked = errors.New("locked by another process")
