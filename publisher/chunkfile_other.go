//go:build !linux

package publisher

import "os"

// afterChunkWrite fsyncs each chunk file: there is no syncfs(2) here. (On
// macOS, Go's Sync is F_FULLFSYNC, which is slow per file; not measured.)
func afterChunkWrite(f *os.File) error { return f.Sync() }

// syncFilesystem does nothing here: afterChunkWrite already fsynced each file.
func syncFilesystem(string) error { return nil }
