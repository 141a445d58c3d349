package manifest

import (
	"errors"
	"fmt"
	"io"
)

// ArtifactReport says what VerifyArtifact checked.
type ArtifactReport struct {
	Chunks int
	Bytes  int64
}

// VerifyArtifact reads the artifact from r and checks every chunk's digest
// and size, the whole-file SHA-256, and that r ends exactly at the declared
// size. The first mismatch is reported with the chunk's index and offset.
func VerifyArtifact(r io.Reader, m *Manifest) (ArtifactReport, error) {
	var rep ArtifactReport
	if err := m.Validate(); err != nil {
		// A manifest built in code: chunk sizes outside 1..Chunking.Max would
		// overrun the buffer below.
		return rep, fmt.Errorf("artifact: %w", err)
	}
	whole := NewHash()
	chunk := NewHash()
	buf := make([]byte, 0, min(int64(m.Chunking.Max), max(m.Artifact.Size, 1)))
	tee := io.TeeReader(r, whole)
	for i, c := range m.Chunks {
		buf = buf[:c.Size]
		if _, err := io.ReadFull(tee, buf); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				return rep, fmt.Errorf("artifact: read chunk %d at offset %d: %w", i, rep.Bytes, err)
			}
			return rep, fmt.Errorf("artifact: %w: file ends inside chunk %d at offset %d (%v)", ErrMismatch, i, rep.Bytes, err)
		}
		chunk.Reset()
		chunk.Write(buf)
		if got := Digest(chunk.Sum(nil)); got != c.SHA256 {
			return rep, fmt.Errorf("artifact: %w: chunk %d at offset %d has SHA-256 %s, manifest says %s", ErrMismatch, i, rep.Bytes, got, c.SHA256)
		}
		rep.Chunks++
		rep.Bytes += c.Size
	}
	if n, err := io.ReadFull(r, make([]byte, 1)); n > 0 || !errors.Is(err, io.EOF) {
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return rep, fmt.Errorf("artifact: %w", err)
		}
		return rep, fmt.Errorf("artifact: %w: file is longer than the manifest's %d bytes", ErrMismatch, m.Artifact.Size)
	}
	if got := Digest(whole.Sum(nil)); got != m.Artifact.SHA256 {
		return rep, fmt.Errorf("artifact: %w: whole-file SHA-256 %s, manifest says %s", ErrMismatch, got, m.Artifact.SHA256)
	}
	return rep, nil
}
