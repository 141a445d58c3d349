package installers

import (
	"errors"
	"io/fs"
	"os"
	"strconv"

	"golang.org/x/sys/windows"
)

// Windows has no process groups: the recorded command is its process only,
// and processes it started are neither waited for nor killed. Killing is
// TerminateProcess, at once: there is no SIGTERM to send first.

// bootID is not recorded on Windows: the creation time identifies a
// process across boots.
func bootID() string { return "" }

// procStart returns the creation time of process pid (100 ns units since
// 1601), as the kernel reports it.
func procStart(pid int) (string, error) {
	h, err := openProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, pid)
	if err != nil {
		return "", err
	}
	defer windows.CloseHandle(h)
	var created, exited, kernel, user windows.Filetime
	if err := windows.GetProcessTimes(h, &created, &exited, &kernel, &user); err != nil {
		return "", err
	}
	return strconv.FormatInt(created.Nanoseconds()/100, 10), nil
}

// groupAlive reports whether process pid runs.
func groupAlive(pid int) bool {
	h, err := openProcess(windows.SYNCHRONIZE, pid)
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if err != nil {
		return true // it exists but is not ours to look at
	}
	defer windows.CloseHandle(h)
	ev, err := windows.WaitForSingleObject(h, 0)
	return err == nil && ev == uint32(windows.WAIT_TIMEOUT)
}

// signalGroup terminates process pid, whether forced or not.
func signalGroup(pid int, _ bool) error {
	h, err := openProcess(windows.PROCESS_TERMINATE, pid)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer windows.CloseHandle(h)
	return windows.TerminateProcess(h, 1)
}

// openProcess opens process pid; fs.ErrNotExist when there is none.
func openProcess(access uint32, pid int) (windows.Handle, error) {
	h, err := windows.OpenProcess(access, false, uint32(pid))
	if errors.Is(err, windows.ERROR_INVALID_PARAMETER) {
		return 0, fs.ErrNotExist
	}
	return h, err
}

// isSelf reports whether pid is this process.
func isSelf(pid int) bool { return pid == os.Getpid() }
