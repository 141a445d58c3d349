package benchrun

import (
	"bufio"
	"io"
	"os"
)

// WriteArtifact writes the first size bytes of src to a new file at path
// and syncs it, so that no system pays for writing the artifact back.
func WriteArtifact(path string, size int64, src io.Reader) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 4<<20)
	if _, err := io.CopyN(w, src, size); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
