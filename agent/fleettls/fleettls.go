// Package fleettls scopes peer traffic to one fleet: agents that hold the
// same secret file see each other, fetch chunks from each other and encrypt
// that traffic; agents without it can do neither.
//
// The secret deterministically yields one Ed25519 key pair and one
// self-signed certificate, the same on every agent of the fleet. Peers speak
// TLS 1.3 with mutual authentication, and each side accepts the other only
// when it presents exactly one certificate whose public key is the fleet
// key. No CA, hostname or validity period is consulted: the pin is the key.
//
// Why this is sound. Possession of the secret is fleet membership. A host
// without it can copy the (public) fleet certificate, but cannot produce the
// TLS 1.3 CertificateVerify signature with the fleet key, so it can neither
// serve to a fleet agent nor fetch from one. TLS 1.3 gives confidentiality
// and forward secrecy (ephemeral ECDHE): a secret stolen later does not
// decrypt recorded traffic. Every member can impersonate every other member;
// that is accepted, because chunks and manifests are verified end to end
// against the publisher's signatures anyway. The secret only decides who can
// read the bytes and who can make an agent serve.
//
// Rejected alternatives: TLS-PSK (the natural fit) is not implemented by
// crypto/tls; a CA issuing a certificate to each agent needs an enrollment
// step and a revocation story, which a LAN fleet without a server lacks;
// HMAC-signed requests over plain HTTP would authenticate but not encrypt.
//
// The fleet ID and the certificate are public (any host can connect and read
// the server certificate): they name the fleet, they do not protect it. As
// the public key is public, anyone can test guesses of the secret offline at
// HKDF speed: the secret must be random (fleetcast fleet-secret writes 256
// bits), never a password; the 32-byte minimum is a length check, not an
// entropy check.
//
// HKDF is the standard library's crypto/hkdf, to which
// golang.org/x/crypto/hkdf now delegates; the output is RFC 5869's either way.
package fleettls

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"time"
)

// Named constants of the derivation; docs/SPEC.md names them too. Changing
// any of them splits every existing fleet.
const (
	// KeyInfo is the HKDF-SHA256 info string deriving the fleet's Ed25519
	// seed from the secret (salt empty).
	KeyInfo = "fleetcast fleet tls v1"
	// IDLabel prefixes the fleet public key when hashing it into the fleet ID.
	IDLabel = "fleetcast fleet id v1"
	// OpenID is the fleet ID of agents without a secret.
	OpenID = "open"
	// MinSecretSize and MaxSecretSize bound a secret after trimming
	// surrounding whitespace; MaxSecretSize also bounds the file.
	MinSecretSize = 32
	MaxSecretSize = 4096
	// Whitespace is what is trimmed from both ends of a secret: ASCII only,
	// so that a secret's meaning does not depend on Unicode tables.
	Whitespace = " \t\r\n\v\f"
)

// Fleet is this agent's fleet: open (no secret) or closed by a shared secret.
// It is immutable and safe for concurrent use.
type Fleet struct {
	id   string
	pub  ed25519.PublicKey // nil when open
	cert tls.Certificate
}

// Open returns the open fleet: plain HTTP, every peer accepted.
func Open() *Fleet { return &Fleet{id: OpenID} }

// FromSecret derives the closed fleet of secret. Surrounding Whitespace is
// trimmed, so a secret file's content and FromSecret agree; the rest must be
// MinSecretSize to MaxSecretSize bytes.
func FromSecret(secret []byte) (*Fleet, error) {
	f, err := fromSecret(secret)
	if err != nil {
		return nil, fmt.Errorf("fleet secret: %w", err)
	}
	return f, nil
}

func fromSecret(secret []byte) (*Fleet, error) {
	secret = bytes.Trim(secret, Whitespace)
	if len(secret) < MinSecretSize {
		return nil, fmt.Errorf("too short (%d bytes, need at least %d): generate one with `fleetcast fleet-secret FILE`", len(secret), MinSecretSize)
	}
	if len(secret) > MaxSecretSize {
		return nil, fmt.Errorf("too long (%d bytes, at most %d)", len(secret), MaxSecretSize)
	}
	seed, err := hkdf.Key(sha256.New, secret, nil, KeyInfo, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	id := fleetID(pub)
	der, err := selfSigned(id, pub, priv)
	if err != nil {
		return nil, fmt.Errorf("fleet %s: certificate: %w", id, err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
	return &Fleet{id: id, pub: pub, cert: cert}, nil
}

// fleetID is the first 8 bytes of SHA-256(IDLabel || pub), in hex.
func fleetID(pub ed25519.PublicKey) string {
	h := sha256.New()
	h.Write([]byte(IDLabel))
	h.Write(pub)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// selfSigned builds the fleet certificate. Every field is fixed and Ed25519
// signatures are deterministic, so all agents built with one Go version hold
// byte-identical certificates; peers compare keys, not bytes, so agents
// built with different Go versions still interoperate.
func selfSigned(id string, pub ed25519.PublicKey, priv ed25519.PrivateKey) ([]byte, error) {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "fleetcast fleet " + id},
		NotBefore:    time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	return x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
}

// ID returns "open" or the closed fleet's 16 lowercase hex digits.
func (f *Fleet) ID() string { return f.id }

// Closed reports whether the fleet is closed by a secret.
func (f *Fleet) Closed() bool { return f.pub != nil }

// Scheme returns the URL scheme peers serve: "http" or "https".
func (f *Fleet) Scheme() string {
	if f.Closed() {
		return "https"
	}
	return "http"
}

// PeerAuthenticated reports whether r comes from a member of the fleet: always
// when the fleet is open; when closed, only over TLS with exactly one client
// certificate carrying the fleet key. It checks the key itself rather than
// trusting the server's tls.Config, so a guard stays right even if the
// listener is configured wrongly. Serve with ServerTLSOptionalClient and
// answer 403 on peer endpoints when this is false.
func (f *Fleet) PeerAuthenticated(r *http.Request) bool {
	if !f.Closed() {
		return true
	}
	if r.TLS == nil || !r.TLS.HandshakeComplete {
		return false
	}
	return f.checkPeer(r.TLS.PeerCertificates) == nil
}

// ErrNotFleet is the handshake error, on either side of a connection, when
// the other side does not present the fleet key: it holds another fleet
// secret or none. An HTTP client sees it wrapped in its request's error.
var ErrNotFleet = errors.New("peer certificate is not this fleet's key: the peer holds another fleet secret or none")

// checkPeer accepts exactly one certificate carrying the fleet key.
func (f *Fleet) checkPeer(certs []*x509.Certificate) error {
	if len(certs) != 1 {
		return fmt.Errorf("fleet %s: peer presented %d certificates, want 1: %w", f.id, len(certs), ErrNotFleet)
	}
	if pub, ok := certs[0].PublicKey.(ed25519.PublicKey); !ok || !pub.Equal(f.pub) {
		return fmt.Errorf("fleet %s: %w", f.id, ErrNotFleet)
	}
	return nil
}
