package signing

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
)

// KeyIDLabel is the domain-separation prefix hashed with a public key to
// derive its key id (docs/SPEC.md, "Key ids").
const KeyIDLabel = "fleetcast-keyid-v1\x00"

// KeyID names a public key: the first 8 bytes of
// SHA-256(KeyIDLabel || public key), as 16 lowercase hex characters.
type KeyID string

// PublicKey is an Ed25519 public key with its derived id.
type PublicKey struct {
	ID  KeyID
	Key ed25519.PublicKey
}

// PrivateKey is an Ed25519 signing key.
type PrivateKey struct {
	Public PublicKey
	key    ed25519.PrivateKey
}

// DeriveKeyID returns the key id of an Ed25519 public key.
func DeriveKeyID(pub ed25519.PublicKey) KeyID {
	h := sha256.New()
	h.Write([]byte(KeyIDLabel))
	h.Write(pub)
	return KeyID(hex.EncodeToString(h.Sum(nil)[:8]))
}

// NewPublicKey wraps raw Ed25519 public key bytes.
func NewPublicKey(raw []byte) (PublicKey, error) {
	if len(raw) != ed25519.PublicKeySize {
		return PublicKey{}, fmt.Errorf("%w: ed25519 public key has %d bytes, want %d", ErrMalformed, len(raw), ed25519.PublicKeySize)
	}
	pub := ed25519.PublicKey(append([]byte(nil), raw...))
	return PublicKey{ID: DeriveKeyID(pub), Key: pub}, nil
}

// GenerateKey creates a new signing key from rand (crypto/rand.Reader when nil).
func GenerateKey(rand io.Reader) (*PrivateKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return &PrivateKey{Public: PublicKey{ID: DeriveKeyID(pub), Key: pub}, key: priv}, nil
}

// NewKeyFromSeed derives a signing key from a 32-byte Ed25519 seed.
func NewKeyFromSeed(seed []byte) (*PrivateKey, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: ed25519 seed has %d bytes, want %d", ErrMalformed, len(seed), ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	return &PrivateKey{Public: PublicKey{ID: DeriveKeyID(pub), Key: pub}, key: priv}, nil
}

// Sign signs msg with Ed25519.
func (k *PrivateKey) Sign(msg []byte) []byte { return ed25519.Sign(k.key, msg) }

func (k *PrivateKey) seed() []byte { return k.key.Seed() }

// Verify reports whether sig is a valid Ed25519 signature of msg by k.
func (k PublicKey) Verify(msg, sig []byte) bool {
	return len(sig) == ed25519.SignatureSize && ed25519.Verify(k.Key, msg, sig)
}
