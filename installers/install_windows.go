package installers

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
)

// canChmod is false: Windows has no Unix modes (os.Chmod only toggles the
// read-only attribute, which would then block replacing the file), so modes
// from manifests and archives are not applied.
const canChmod = false

// killProcessGroupOnCancel leaves cmd's default cancellation, which kills
// the process only: on Windows, processes it started may survive a timeout.
func killProcessGroupOnCancel(*exec.Cmd) {}

// copyOwner does nothing: installed files get the default security
// descriptor of their directory.
func copyOwner(*os.File, fs.FileInfo) error { return nil }

// archiveSupported: the archive installer switches a symlink atomically by
// renaming another over it, which Windows does not offer for directory
// symlinks.
func archiveSupported() error {
	return fmt.Errorf("archive installer on Windows (atomic switch of the current symlink): %w", errors.ErrUnsupported)
}
