package fleettls

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"

	"github.com/fleetcast/fleetcast/internal/boundedfile"

	"github.com/fleetcast/fleetcast/internal/atomicfile"
)

// Load reads the fleet secret file secretFile and derives its fleet; ""
// means no secret, the open fleet. The file must be a regular file that group
// and others cannot access (mode & 0o077 == 0; not checked on Windows) and
// hold MinSecretSize to MaxSecretSize bytes after trimming Whitespace.
func Load(secretFile string) (*Fleet, error) {
	if secretFile == "" {
		return Open(), nil
	}
	secret, err := readSecret(secretFile)
	if err != nil {
		return nil, err
	}
	f, err := fromSecret(secret)
	if err != nil {
		return nil, fmt.Errorf("fleet secret %s: %w", secretFile, err)
	}
	return f, nil
}

// readSecret reads at most MaxSecretSize+1 bytes from path, after checking
// the open file's type and permissions (not the path's, so a swap cannot
// slip by). It opens without blocking, so that a named pipe given by
// mistake is refused rather than waited on for ever.
func readSecret(path string) ([]byte, error) {
	f, fi, err := boundedfile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("fleet secret: %w", err)
	}
	defer f.Close()
	if err := checkMode(path, fi.Mode()); err != nil {
		return nil, err
	}
	b, err := boundedfile.ReadFrom(f, path, MaxSecretSize)
	if errors.Is(err, boundedfile.ErrTooLarge) {
		return nil, fmt.Errorf("fleet secret %s: too long (more than %d bytes): is this the right file?", path, MaxSecretSize)
	}
	if err != nil {
		return nil, fmt.Errorf("fleet secret: %w", err)
	}
	return b, nil
}

// newSecretSize is how many random bytes NewSecret writes (hex encoded).
const newSecretSize = 32

// NewSecret writes a new random secret (32 random bytes, hex, newline) to
// path with mode 0600 atomically; refuses to overwrite an existing file,
// which would lock out every agent holding it.
func NewSecret(path string) error {
	b := make([]byte, newSecretSize)
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("fleet secret: %w", err)
	}
	data := []byte(hex.EncodeToString(b) + "\n")
	if err := atomicfile.WriteNew(path, data, 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("fleet secret %s exists: refusing to overwrite it (agents holding it would lose their fleet)", path)
		}
		return fmt.Errorf("fleet secret: %w", err)
	}
	return nil
}
