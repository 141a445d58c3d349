// Package signing holds fleetcast's keys and trust model: Ed25519 signing
// keys and their encrypted key files, DSSE envelopes, and the signed trust
// root (root.json) that says which keys may sign releases, k of n.
//
// Every format is specified in docs/SPEC.md. Verification always checks
// signatures over the raw payload bytes before anything decodes the payload.
package signing

import "errors"

// Sentinel errors, checked with errors.Is. Messages built on them say what
// the failure means for the operator.
var (
	// ErrBadSignature: a signature by a trusted key does not verify, so the
	// payload or the signature was altered after signing.
	ErrBadSignature = errors.New("signature does not verify")
	// ErrUnknownKey: the envelope is signed only by keys the root does not trust.
	ErrUnknownKey = errors.New("signed by a key that is not in the trust root")
	// ErrThreshold: fewer distinct trusted keys signed than the root requires.
	ErrThreshold = errors.New("not enough valid signatures")
	// ErrPayloadType: the envelope carries a payload of another type.
	ErrPayloadType = errors.New("unexpected payload type")
	// ErrTooLarge: an input exceeds its named size limit.
	ErrTooLarge = errors.New("input exceeds size limit")
	// ErrMalformed: an input is not well-formed (bad JSON, bad base64, missing fields).
	ErrMalformed = errors.New("malformed input")
	// ErrRootExpired: the trust root's expiry time has passed.
	ErrRootExpired = errors.New("trust root expired")
	// ErrRotation: a new root version is not properly signed by the old one.
	ErrRotation = errors.New("root rotation refused")
	// ErrWrongPassphrase: the passphrase does not decrypt the private key.
	ErrWrongPassphrase = errors.New("wrong passphrase")
	// ErrPassphraseRequired: the private key is encrypted and no passphrase was given.
	ErrPassphraseRequired = errors.New("private key is encrypted: passphrase required")
)
