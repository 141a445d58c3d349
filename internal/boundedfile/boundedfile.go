// Package boundedfile reads the small files fleetcast loads whole
// (configuration, secrets, state, roots): without blocking on a named pipe
// given by mistake, only from a regular file (checked on the file opened,
// not on the path, so a swap cannot slip by), and never more than a limit.
package boundedfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

var (
	// ErrNotRegular is wrapped when the path names a directory, a named
	// pipe, a device or a socket.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge is wrapped when the file holds more than the limit.
	ErrTooLarge = errors.New("file too large")
)

// Open opens path for reading without blocking and returns it with its
// info, or an error wrapping ErrNotRegular (which names the file's type)
// when it is not a regular file.
func Open(path string) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s is %s, %w", path, Kind(fi.Mode()), ErrNotRegular)
	}
	return f, fi, nil
}

// Read returns the content of the regular file at path, failing with an
// error wrapping ErrTooLarge when it holds more than limit bytes (it never
// reads more than limit+1).
func Read(path string, limit int64) ([]byte, error) {
	f, _, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadFrom(f, path, limit)
}

// ReadFrom reads the rest of f (named path in errors), at most limit bytes.
func ReadFrom(f io.Reader, path string, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than the limit of %d bytes: %w", path, limit, ErrTooLarge)
	}
	return b, nil
}

// Kind names the type of a file mode, for messages: "a regular file", "a
// directory", "a named pipe", "a device", "a socket", "a symbolic link".
func Kind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeDevice != 0, m&fs.ModeCharDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return fmt.Sprintf("a special file (%v)", m.Type())
}
