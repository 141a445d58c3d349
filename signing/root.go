package signing

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/fleetcast/fleetcast/internal/strictjson"
)

// Root limits and payload type (docs/SPEC.md, "Trust root").
const (
	RootPayloadType = "application/vnd.fleetcast.root.v1+json"
	// MaxRootSize bounds an encoded root envelope.
	MaxRootSize = 64 << 10
	// MaxRootKeys bounds the keys one root may list.
	MaxRootKeys = 32
	// MaxRootRotations bounds how many root versions one update may walk.
	MaxRootRotations = 1024
)

// Root is the trust root: the keys that may sign releases (and the next
// root), how many of them must sign, and until when it may be used.
type Root struct {
	Version   uint64      `json:"version"`
	Expires   time.Time   `json:"expires"`
	Threshold int         `json:"threshold"`
	Keys      []PublicKey `json:"-"`
}

type rootKeyJSON struct {
	KeyID   KeyID  `json:"keyid"`
	Ed25519 string `json:"ed25519"`
}

type rootJSON struct {
	Version   uint64        `json:"version"`
	Expires   time.Time     `json:"expires"`
	Threshold int           `json:"threshold"`
	Keys      []rootKeyJSON `json:"keys"`
}

// Payload encodes r as the root payload (indented JSON). It checks r first.
func (r *Root) Payload() ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	j := rootJSON{Version: r.Version, Expires: r.Expires.UTC(), Threshold: r.Threshold}
	for _, k := range r.Keys {
		j.Keys = append(j.Keys, rootKeyJSON{KeyID: k.ID, Ed25519: b64.EncodeToString(k.Key)})
	}
	b, err := json.MarshalIndent(j, "", "  ")
	return append(b, '\n'), err
}

// Envelope returns r as an unsigned root envelope.
func (r *Root) Envelope() (*Envelope, error) {
	p, err := r.Payload()
	if err != nil {
		return nil, err
	}
	return NewEnvelope(RootPayloadType, p), nil
}

func (r *Root) validate() error {
	switch {
	case r.Version == 0:
		return fmt.Errorf("root: %w: version must be at least 1", ErrMalformed)
	case len(r.Keys) == 0 || len(r.Keys) > MaxRootKeys:
		return fmt.Errorf("root: %w: %d keys, want 1 to %d", ErrMalformed, len(r.Keys), MaxRootKeys)
	case r.Threshold < 1 || r.Threshold > len(r.Keys):
		return fmt.Errorf("root: %w: threshold %d with %d keys: want 1 <= threshold <= keys", ErrMalformed, r.Threshold, len(r.Keys))
	case r.Expires.IsZero():
		return fmt.Errorf("root: %w: no expiry time", ErrMalformed)
	case r.Expires.UTC().Year() < 0 || r.Expires.UTC().Year() > 9999:
		// Payload encodes the expiry in UTC, which RFC 3339 limits to years 0-9999.
		return fmt.Errorf("root: %w: expiry %s is outside years 0 to 9999 in UTC", ErrMalformed, r.Expires.Format(time.RFC3339))
	}
	seen := map[KeyID]bool{}
	for _, k := range r.Keys {
		if seen[k.ID] {
			return fmt.Errorf("root: %w: key %s listed twice", ErrMalformed, k.ID)
		}
		seen[k.ID] = true
	}
	return nil
}

// Key returns the trusted key with the given id.
func (r *Root) Key(id KeyID) (PublicKey, bool) {
	for _, k := range r.Keys {
		if k.ID == id {
			return k, true
		}
	}
	return PublicKey{}, false
}

// KeyIDs lists the root's key ids, for messages.
func (r *Root) KeyIDs() string {
	ids := make([]string, len(r.Keys))
	for i, k := range r.Keys {
		ids[i] = string(k.ID)
	}
	return strings.Join(ids, ", ")
}

// CheckExpiry fails with ErrRootExpired when now is past the root's expiry.
func (r *Root) CheckExpiry(now time.Time) error {
	if now.After(r.Expires) {
		return fmt.Errorf("root version %d: %w on %s: ask the publisher for a newer root", r.Version, ErrRootExpired, r.Expires.UTC().Format(time.RFC3339))
	}
	return nil
}

// DecodeRootPayload decodes a root payload without verifying any signature.
// Use ParseRoot or Root.Rotate on signed roots.
func DecodeRootPayload(payload []byte) (*Root, error) {
	var j rootJSON
	if err := strictjson.Unmarshal(payload, &j); err != nil {
		return nil, fmt.Errorf("root: %w: %v", ErrMalformed, err)
	}
	if len(j.Keys) > MaxRootKeys {
		return nil, fmt.Errorf("root: %w: %d keys, limit %d", ErrTooLarge, len(j.Keys), MaxRootKeys)
	}
	r := &Root{Version: j.Version, Expires: j.Expires, Threshold: j.Threshold}
	for _, k := range j.Keys {
		pub, err := decodePublic(k.Ed25519, k.KeyID)
		if err != nil {
			return nil, fmt.Errorf("root: %w", err)
		}
		r.Keys = append(r.Keys, pub)
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// ParseRoot reads a root envelope that is trusted by configuration (the
// pinned root) and checks that a threshold of its own keys signed it. It does
// not check expiry: an expired pinned root may still rotate to a current one;
// call CheckExpiry on the root finally in use.
func ParseRoot(data []byte) (*Root, *Envelope, error) {
	env, err := parseRootEnvelope(data)
	if err != nil {
		return nil, nil, err
	}
	r, err := DecodeRootPayload(env.Payload)
	if err != nil {
		return nil, nil, err
	}
	// Now that the keys are known, check they signed the bytes just decoded.
	if _, err := r.VerifyEnvelope(env, RootPayloadType); err != nil {
		return nil, nil, fmt.Errorf("root version %d is not signed by its own keys: %w", r.Version, err)
	}
	return r, env, nil
}

func parseRootEnvelope(data []byte) (*Envelope, error) {
	if len(data) > MaxRootSize {
		return nil, fmt.Errorf("root: %w: %d bytes, limit %d", ErrTooLarge, len(data), MaxRootSize)
	}
	env, err := ParseEnvelope(data)
	if err != nil {
		return nil, fmt.Errorf("root: %w", err)
	}
	if env.PayloadType != RootPayloadType {
		return nil, fmt.Errorf("root: %w %q, want %q", ErrPayloadType, env.PayloadType, RootPayloadType)
	}
	return env, nil
}

// Rotate verifies next, the encoded envelope of root version r.Version+1: a
// threshold of r's keys must have signed it (so only the current key holders
// can hand over trust) and a threshold of its own keys too (so the new keys
// are live). It returns the new root; r is unchanged.
func (r *Root) Rotate(next []byte) (*Root, error) {
	env, err := parseRootEnvelope(next)
	if err != nil {
		return nil, err
	}
	if _, err := r.VerifyEnvelope(env, RootPayloadType); err != nil {
		return nil, fmt.Errorf("%w: new root is not signed by a threshold of root version %d's keys (%s): %w", ErrRotation, r.Version, r.KeyIDs(), err)
	}
	n, err := DecodeRootPayload(env.Payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRotation, err)
	}
	if n.Version != r.Version+1 {
		return nil, fmt.Errorf("%w: root version %d does not follow version %d", ErrRotation, n.Version, r.Version)
	}
	if _, err := n.VerifyEnvelope(env, RootPayloadType); err != nil {
		return nil, fmt.Errorf("%w: root version %d is not signed by a threshold of its own keys: %w", ErrRotation, n.Version, err)
	}
	return n, nil
}
