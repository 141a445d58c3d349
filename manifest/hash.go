package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
)

// DigestSize is the size in bytes of every digest in a manifest (SHA-256).
const DigestSize = 32

// Digest is a SHA-256 digest. It encodes as lowercase hex in JSON.
type Digest [DigestSize]byte

// NewHash returns the SHA-256 implementation used for every chunk and artifact
// digest in fleetcast. It is the one place where the implementation is chosen:
// BenchmarkHash compares github.com/minio/sha256-simd with crypto/sha256. Both
// use the CPU's SHA extensions and measure the same (docs/BENCHMARKS.md), so the
// standard library wins the tie: one dependency fewer on the hot path.
func NewHash() hash.Hash { return sha256.New() }

// Sum returns the SHA-256 digest of b.
func Sum(b []byte) Digest { return sha256.Sum256(b) }

// String returns the digest as lowercase hex.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// MarshalText encodes d as lowercase hex.
func (d Digest) MarshalText() ([]byte, error) {
	out := make([]byte, hex.EncodedLen(DigestSize))
	hex.Encode(out, d[:])
	return out, nil
}

// UnmarshalText decodes exactly 64 lowercase hex characters.
func (d *Digest) UnmarshalText(b []byte) error {
	parsed, err := ParseDigest(string(b))
	if err != nil {
		return err
	}
	*d = parsed
	return nil
}

// ParseDigest parses a digest written as 64 lowercase hex characters.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	if len(s) != hex.EncodedLen(DigestSize) {
		return d, fmt.Errorf("digest %q: want %d hex characters, got %d", truncate(s, 80), hex.EncodedLen(DigestSize), len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return d, fmt.Errorf("digest %q: not lowercase hex", truncate(s, 80))
		}
	}
	if _, err := hex.Decode(d[:], []byte(s)); err != nil {
		return d, fmt.Errorf("digest %q: %w", truncate(s, 80), err)
	}
	return d, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
