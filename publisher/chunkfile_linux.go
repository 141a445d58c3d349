package publisher

import (
	"os"

	"golang.org/x/sys/unix"
)

// writeChunkTemp writes a chunk to a temporary file beside path, through the
// page cache and without an fsync: syncFilesystem makes all chunks durable at
// once, before any is renamed into place. One fsync per chunk file costs a
// journal commit each and doubled the time of a 1 GiB publish; O_DIRECT was
// measured no faster than this (docs/BENCHMARKS.md).
func writeChunkTemp(path string, data []byte) (string, error) {
	tmp := tempName(path)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		// Start writeback now, without waiting for it, so the disk works
		// while the next chunks are hashed.
		err = unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

// syncFilesystem makes everything written to dir's filesystem durable with one
// syncfs(2).
func syncFilesystem(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return &os.PathError{Op: "syncfs", Path: dir, Err: err}
	}
	return nil
}
