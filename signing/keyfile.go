package signing

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/fleetcast/fleetcast/internal/strictjson"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/scrypt"
)

// Key file formats (docs/SPEC.md, "Key files").
const (
	PublicKeyFileType  = "fleetcast-public-key-v1"
	PrivateKeyFileType = "fleetcast-private-key-v1"
	// MaxKeyFileSize bounds both key file formats.
	MaxKeyFileSize = 4 << 10

	kdfScrypt      = "scrypt"
	aeadXChaCha    = "xchacha20poly1305"
	none           = "none"
	defaultLogN    = 15 // scrypt N = 32768, r = 8, p = 1: about 100 ms, 32 MiB
	minLogN        = 10
	maxLogN        = 22
	scryptR        = 8
	scryptP        = 1
	scryptSaltSize = 32
)

type publicKeyFile struct {
	Type    string `json:"type"`
	KeyID   KeyID  `json:"keyid"`
	Ed25519 string `json:"ed25519"`
}

type scryptParams struct {
	Salt string `json:"salt"`
	LogN int    `json:"log_n"`
	R    int    `json:"r"`
	P    int    `json:"p"`
}

type privateKeyFile struct {
	Type    string        `json:"type"`
	KeyID   KeyID         `json:"keyid"`
	Ed25519 string        `json:"ed25519_public"`
	KDF     string        `json:"kdf"`
	Scrypt  *scryptParams `json:"scrypt,omitempty"`
	AEAD    string        `json:"aead"`
	Nonce   string        `json:"nonce,omitempty"`
	Sealed  string        `json:"sealed,omitempty"` // AEAD(seed), when encrypted
	Seed    string        `json:"seed,omitempty"`   // plain seed, when kdf is "none"
}

var b64 = base64.StdEncoding

// decodeStd decodes the base64 of key files and roots: the standard alphabet
// with padding, canonical trailing bits, and no line breaks (which Go's
// decoder would otherwise skip).
func decodeStd(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("line break in base64")
	}
	return b64.Strict().DecodeString(s)
}

// MarshalPublicKey encodes k as a public key file.
func MarshalPublicKey(k PublicKey) []byte {
	return marshalIndent(publicKeyFile{Type: PublicKeyFileType, KeyID: k.ID, Ed25519: b64.EncodeToString(k.Key)})
}

// ParsePublicKey decodes a public key file and checks that its key id matches the key.
func ParsePublicKey(data []byte) (PublicKey, error) {
	if len(data) > MaxKeyFileSize {
		return PublicKey{}, fmt.Errorf("public key file: %w: %d bytes, limit %d", ErrTooLarge, len(data), MaxKeyFileSize)
	}
	var f publicKeyFile
	if err := strictjson.Unmarshal(data, &f); err != nil {
		return PublicKey{}, fmt.Errorf("public key file: %w: %v", ErrMalformed, err)
	}
	if f.Type != PublicKeyFileType {
		return PublicKey{}, fmt.Errorf("public key file: %w: type %q, want %q", ErrMalformed, f.Type, PublicKeyFileType)
	}
	pub, err := decodePublic(f.Ed25519, f.KeyID)
	if err != nil {
		return PublicKey{}, fmt.Errorf("public key file: %w", err)
	}
	return pub, nil
}

func decodePublic(enc string, id KeyID) (PublicKey, error) {
	raw, err := decodeStd(enc)
	if err != nil {
		return PublicKey{}, fmt.Errorf("key %s: %w: public key base64: %v", quoteID(id), ErrMalformed, err)
	}
	pub, err := NewPublicKey(raw)
	if err != nil {
		return PublicKey{}, fmt.Errorf("key %s: %w", quoteID(id), err)
	}
	if pub.ID != id {
		return PublicKey{}, fmt.Errorf("key %s: %w: the id does not match the key, whose id is %s", quoteID(id), ErrMalformed, pub.ID)
	}
	return pub, nil
}

// quoteID quotes a key id read from a file or an envelope, cut to 64
// bytes: it may hold spaces, control characters or anything else.
func quoteID(id KeyID) string {
	if len(id) > 64 {
		return strconv.Quote(string(id[:64])) + "..."
	}
	return strconv.Quote(string(id))
}

// MarshalPrivateKey encodes k as a private key file whose seed is sealed
// with XChaCha20-Poly1305 under a key derived from passphrase by scrypt. An
// empty passphrase is an error: use MarshalUnencryptedPrivateKey to store a
// key in the clear.
func MarshalPrivateKey(k *PrivateKey, passphrase []byte) ([]byte, error) {
	if len(passphrase) == 0 {
		return nil, fmt.Errorf("encrypt private key %s: empty passphrase", k.Public.ID)
	}
	return marshalPrivateKey(k, passphrase, defaultLogN)
}

// MarshalUnencryptedPrivateKey encodes k as a private key file with the seed
// in the clear (the CLI's --unencrypted).
func MarshalUnencryptedPrivateKey(k *PrivateKey) []byte {
	b, _ := marshalPrivateKey(k, nil, defaultLogN)
	return b
}

func marshalPrivateKey(k *PrivateKey, passphrase []byte, logN int) ([]byte, error) {
	f := privateKeyFile{Type: PrivateKeyFileType, KeyID: k.Public.ID, Ed25519: b64.EncodeToString(k.Public.Key), KDF: none, AEAD: none}
	if len(passphrase) == 0 {
		f.Seed = b64.EncodeToString(k.seed())
		return marshalIndent(f), nil
	}
	salt := make([]byte, scryptSaltSize)
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	f.KDF, f.AEAD = kdfScrypt, aeadXChaCha
	f.Scrypt = &scryptParams{Salt: b64.EncodeToString(salt), LogN: logN, R: scryptR, P: scryptP}
	aead, err := keyFileAEAD(passphrase, salt, *f.Scrypt)
	if err != nil {
		return nil, err
	}
	f.Nonce = b64.EncodeToString(nonce)
	f.Sealed = b64.EncodeToString(aead.Seal(nil, nonce, k.seed(), keyFileAAD(k.Public)))
	return marshalIndent(f), nil
}

// IsEncryptedPrivateKey reports whether data is a private key file whose seed
// is sealed under a passphrase.
func IsEncryptedPrivateKey(data []byte) bool {
	var f privateKeyFile
	return len(data) <= MaxKeyFileSize && strictjson.Unmarshal(data, &f) == nil && f.Type == PrivateKeyFileType && f.KDF != none
}

// ParsePrivateKey decodes a private key file, decrypting it with passphrase
// when it is encrypted. A wrong passphrase fails with ErrWrongPassphrase.
func ParsePrivateKey(data, passphrase []byte) (*PrivateKey, error) {
	f, pub, err := parsePrivateKeyFile(data)
	if err != nil {
		return nil, err
	}
	seed, err := openSeed(f, pub, passphrase)
	if err != nil {
		return nil, err
	}
	k, err := NewKeyFromSeed(seed)
	if err != nil {
		return nil, fmt.Errorf("private key file: %w", err)
	}
	if !k.Public.Key.Equal(pub.Key) {
		return nil, fmt.Errorf("private key file: %w: the private key does not match its public key", ErrMalformed)
	}
	return k, nil
}

func parsePrivateKeyFile(data []byte) (privateKeyFile, PublicKey, error) {
	var f privateKeyFile
	if len(data) > MaxKeyFileSize {
		return f, PublicKey{}, fmt.Errorf("private key file: %w: %d bytes, limit %d", ErrTooLarge, len(data), MaxKeyFileSize)
	}
	if err := strictjson.Unmarshal(data, &f); err != nil {
		return f, PublicKey{}, fmt.Errorf("private key file: %w: %v", ErrMalformed, err)
	}
	if f.Type != PrivateKeyFileType {
		return f, PublicKey{}, fmt.Errorf("private key file: %w: type %q, want %q", ErrMalformed, f.Type, PrivateKeyFileType)
	}
	pub, err := decodePublic(f.Ed25519, f.KeyID)
	if err != nil {
		return f, PublicKey{}, fmt.Errorf("private key file: %w", err)
	}
	return f, pub, nil
}

func openSeed(f privateKeyFile, pub PublicKey, passphrase []byte) ([]byte, error) {
	switch {
	case f.KDF == none && f.AEAD == none && f.Scrypt == nil && f.Nonce == "" && f.Sealed == "":
		seed, err := decodeStd(f.Seed)
		if err != nil {
			return nil, fmt.Errorf("private key file: %w: seed base64: %v", ErrMalformed, err)
		}
		return seed, nil
	case f.KDF == kdfScrypt && f.AEAD == aeadXChaCha && f.Scrypt != nil && f.Seed == "":
		return openSealedSeed(f, pub, passphrase)
	default:
		return nil, fmt.Errorf("private key file: %w: unsupported kdf %q / aead %q, or fields of both variants", ErrMalformed, f.KDF, f.AEAD)
	}
}

func openSealedSeed(f privateKeyFile, pub PublicKey, passphrase []byte) ([]byte, error) {
	if len(passphrase) == 0 {
		return nil, fmt.Errorf("private key %s: %w", pub.ID, ErrPassphraseRequired)
	}
	salt, err1 := decodeStd(f.Scrypt.Salt)
	nonce, err2 := decodeStd(f.Nonce)
	sealed, err3 := decodeStd(f.Sealed)
	if err1 != nil || err2 != nil || err3 != nil || len(nonce) != chacha20poly1305.NonceSizeX {
		return nil, fmt.Errorf("private key file: %w: bad salt, nonce or sealed key", ErrMalformed)
	}
	aead, err := keyFileAEAD(passphrase, salt, *f.Scrypt)
	if err != nil {
		return nil, err
	}
	seed, err := aead.Open(nil, nonce, sealed, keyFileAAD(pub))
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w (or the key file was altered)", pub.ID, ErrWrongPassphrase)
	}
	return seed, nil
}

func keyFileAEAD(passphrase, salt []byte, p scryptParams) (interface {
	Seal(dst, nonce, plaintext, ad []byte) []byte
	Open(dst, nonce, ciphertext, ad []byte) ([]byte, error)
}, error) {
	if p.LogN < minLogN || p.LogN > maxLogN || p.R != scryptR || p.P != scryptP || len(salt) < 16 {
		return nil, fmt.Errorf("private key file: %w: scrypt parameters log_n=%d r=%d p=%d are outside the accepted range", ErrMalformed, p.LogN, p.R, p.P)
	}
	key, err := scrypt.Key(passphrase, salt, 1<<p.LogN, p.R, p.P, chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("derive key-file key: %w", err)
	}
	return chacha20poly1305.NewX(key)
}

// keyFileAAD binds the sealed seed to the file type and public key, so that
// neither can be swapped without the AEAD failing.
func keyFileAAD(pub PublicKey) []byte {
	return append([]byte(PrivateKeyFileType+"\n"+string(pub.ID)+"\n"), pub.Key...)
}

func marshalIndent(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err) // only fixed struct types are marshalled here
	}
	return append(b, '\n')
}
