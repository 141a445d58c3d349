// Package atomicfile writes files so that readers see either the old content
// or the new, never a mix: a temporary file in the same directory, fsync,
// rename over the target, fsync of the directory.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile atomically replaces path with data, with permissions perm.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write atomically replaces path with what fill writes, with permissions perm.
// The directory must exist. On any error the target is untouched and the
// temporary file removed.
func Write(path string, perm os.FileMode, fill func(io.Writer) error) error {
	return write(path, perm, fill, os.Rename)
}

// WriteNew is WriteFile for a file that must not exist yet: it fails with an
// error matching fs.ErrExist, leaving the existing file untouched, even when
// another process creates path at the same moment (the temporary file is
// hard-linked to path, which never replaces a file).
func WriteNew(path string, data []byte, perm os.FileMode) error {
	return write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}, func(tmp, path string) error {
		err := os.Link(tmp, path)
		os.Remove(tmp)
		return err
	})
}

func write(path string, perm os.FileMode, fill func(io.Writer) error, place func(tmp, path string) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = fill(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: fsync: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = place(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(dir)
}

// MkdirAll creates dir and any missing parents, and fsyncs the parent of
// each directory it creates, so that the new directories survive a crash.
func MkdirAll(dir string, perm os.FileMode) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("mkdir %s: not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := MkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return SyncDir(parent)
}

// SyncDir fsyncs a directory so that renames and creations in it are durable.
// It is a no-op where directories cannot be synced (Windows).
func SyncDir(dir string) error {
	return syncDir(dir)
}
