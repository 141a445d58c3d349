//go:build !linux

package publisher

// writeChunkTemp writes a chunk to a temporary file beside path and fsyncs it.
func writeChunkTemp(path string, data []byte) (string, error) {
	return writeTempBuffered(path, data, true)
}

// syncFilesystem does nothing here: writeChunkTemp already fsynced each file.
func syncFilesystem(string) error { return nil }
