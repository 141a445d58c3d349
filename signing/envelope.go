package signing

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/fleetcast/fleetcast/internal/strictjson"
)

// Envelope limits (docs/SPEC.md, "Envelope").
const (
	// MaxEnvelopeSize bounds an encoded envelope: a manifest of MaxChunks
	// chunks with a few signatures fits with room to spare.
	MaxEnvelopeSize = 24 << 20
	// MaxSignatures bounds the signatures one envelope may carry.
	MaxSignatures = 32
	// maxNameLen bounds payloadType and keyid.
	maxNameLen = 256
	// DSSEVersion is the DSSE pre-authentication encoding's version label.
	DSSEVersion = "DSSEv1"
)

// Envelope is a DSSE envelope (github.com/secure-systems-lab/dsse): a typed
// payload and signatures over its pre-authentication encoding (PAE).
type Envelope struct {
	PayloadType string
	Payload     []byte
	Signatures  []Signature
}

// Signature is one signature in an envelope. KeyID is a hint that selects
// the trusted key to check it with; it is not itself trusted.
type Signature struct {
	KeyID KeyID
	Sig   []byte
}

type envelopeJSON struct {
	PayloadType string          `json:"payloadType"`
	Payload     string          `json:"payload"`
	Signatures  []signatureJSON `json:"signatures"`
}

type signatureJSON struct {
	KeyID KeyID  `json:"keyid"`
	Sig   string `json:"sig"`
}

// PAE returns the DSSE v1 pre-authentication encoding of a payload:
// "DSSEv1" SP LEN(type) SP type SP LEN(payload) SP payload, lengths in ASCII decimal.
func PAE(payloadType string, payload []byte) []byte {
	out := make([]byte, 0, len(DSSEVersion)+len(payloadType)+len(payload)+48)
	out = append(out, DSSEVersion+" "...)
	out = strconv.AppendInt(out, int64(len(payloadType)), 10)
	out = append(out, ' ')
	out = append(out, payloadType...)
	out = append(out, ' ')
	out = strconv.AppendInt(out, int64(len(payload)), 10)
	out = append(out, ' ')
	return append(out, payload...)
}

// NewEnvelope wraps payload, unsigned.
func NewEnvelope(payloadType string, payload []byte) *Envelope {
	return &Envelope{PayloadType: payloadType, Payload: payload}
}

// Sign adds k's signature. It returns false, changing nothing, when the
// envelope already carries a signature with k's key id.
func (e *Envelope) Sign(k *PrivateKey) bool {
	if e.SignedBy(k.Public.ID) {
		return false
	}
	e.Signatures = append(e.Signatures, Signature{KeyID: k.Public.ID, Sig: k.Sign(PAE(e.PayloadType, e.Payload))})
	return true
}

// SignedBy reports whether a signature names id (whether or not it verifies).
func (e *Envelope) SignedBy(id KeyID) bool {
	for _, s := range e.Signatures {
		if s.KeyID == id {
			return true
		}
	}
	return false
}

// Marshal encodes the envelope as JSON with standard base64, one line and a newline.
func (e *Envelope) Marshal() []byte {
	j := envelopeJSON{PayloadType: e.PayloadType, Payload: base64.StdEncoding.EncodeToString(e.Payload), Signatures: []signatureJSON{}}
	for _, s := range e.Signatures {
		j.Signatures = append(j.Signatures, signatureJSON{KeyID: s.KeyID, Sig: base64.StdEncoding.EncodeToString(s.Sig)})
	}
	b, err := json.Marshal(j)
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

// ReadEnvelope reads at most MaxEnvelopeSize bytes from r and parses them.
func ReadEnvelope(r io.Reader) (*Envelope, error) {
	b, err := strictjson.ReadAll(r, MaxEnvelopeSize, ErrTooLarge)
	if err != nil {
		return nil, fmt.Errorf("read envelope: %w", err)
	}
	return ParseEnvelope(b)
}

// ParseEnvelope decodes an envelope. It does not verify anything: pass the
// result to Root.VerifyEnvelope before using the payload.
func ParseEnvelope(data []byte) (*Envelope, error) {
	if len(data) > MaxEnvelopeSize {
		return nil, fmt.Errorf("envelope: %w: %d bytes, limit %d", ErrTooLarge, len(data), MaxEnvelopeSize)
	}
	var j envelopeJSON
	if err := strictjson.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("envelope: %w: %v (truncated or not a DSSE envelope?)", ErrMalformed, err)
	}
	if err := checkEnvelopeLimits(&j); err != nil {
		return nil, err
	}
	if j.PayloadType == "" {
		return nil, fmt.Errorf("envelope: %w: payloadType missing", ErrMalformed)
	}
	payload, err := decodeBase64(j.Payload)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w: payload: %v", ErrMalformed, err)
	}
	e := &Envelope{PayloadType: j.PayloadType, Payload: payload}
	for i, s := range j.Signatures {
		if !validKeyIDText(string(s.KeyID)) {
			return nil, fmt.Errorf("envelope: %w: signature %d: keyid missing or not printable ASCII", ErrMalformed, i)
		}
		sig, err := decodeBase64(s.Sig)
		if err != nil {
			return nil, fmt.Errorf("envelope: %w: signature %d: %v", ErrMalformed, i, err)
		}
		e.Signatures = append(e.Signatures, Signature{KeyID: s.KeyID, Sig: sig})
	}
	return e, nil
}

// validKeyIDText reports whether a keyid is 1 or more printable ASCII
// characters without spaces: it is shown to people and must not steer a
// terminal.
func validKeyIDText(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return s != ""
}

// checkEnvelopeLimits applies the envelope's count and length limits, which
// are judged before the form of its fields (docs/SPEC.md, "Error classes").
func checkEnvelopeLimits(j *envelopeJSON) error {
	if len(j.Signatures) > MaxSignatures {
		return fmt.Errorf("envelope: %w: %d signatures, limit %d", ErrTooLarge, len(j.Signatures), MaxSignatures)
	}
	for i, s := range j.Signatures {
		if len(s.KeyID) > maxNameLen {
			return fmt.Errorf("envelope: %w: signature %d: keyid longer than %d bytes", ErrTooLarge, i, maxNameLen)
		}
	}
	if len(j.PayloadType) > maxNameLen {
		return fmt.Errorf("envelope: %w: payloadType longer than %d bytes", ErrTooLarge, maxNameLen)
	}
	return nil
}

// decodeBase64 accepts standard or URL-safe base64, padded or not, as DSSE
// requires of parsers.
func decodeBase64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Errorf("line break in base64")
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("not base64")
}
