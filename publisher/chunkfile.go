package publisher

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// tempName returns a temporary name beside path, starting with "." as
// docs/SPEC.md promises; Publish renames it to path once the data is durable.
func tempName(path string) string {
	return filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.tmp-%08x", filepath.Base(path), rand.Uint32()))
}

// writeChunkTemp writes a chunk to a new temporary file beside path, then
// runs the platform's afterChunkWrite on it (see chunkfile_*.go).
func writeChunkTemp(path string, data []byte) (string, error) {
	tmp := tempName(path)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = afterChunkWrite(f)
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
