package signing

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// testExpires is the expiry of every test root; tests check expiry against
// fixed times around it.
var testExpires = time.Date(2030, time.January, 2, 3, 4, 5, 0, time.UTC)

// testKey returns a deterministic key: seed n repeated 32 times.
func testKey(t testing.TB, n byte) *PrivateKey {
	t.Helper()
	k, err := NewKeyFromSeed(bytes.Repeat([]byte{n}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testKeys returns keys for seeds 1..n.
func testKeys(t testing.TB, n int) []*PrivateKey {
	t.Helper()
	ks := make([]*PrivateKey, n)
	for i := range ks {
		ks[i] = testKey(t, byte(i+1))
	}
	return ks
}

func publicKeys(ks ...*PrivateKey) []PublicKey {
	pubs := make([]PublicKey, len(ks))
	for i, k := range ks {
		pubs[i] = k.Public
	}
	return pubs
}

func testRoot(version uint64, threshold int, ks ...*PrivateKey) *Root {
	return &Root{Version: version, Expires: testExpires, Threshold: threshold, Keys: publicKeys(ks...)}
}

// signedEnvelope wraps payload and signs it with each of signers.
func signedEnvelope(payloadType string, payload []byte, signers ...*PrivateKey) *Envelope {
	env := NewEnvelope(payloadType, payload)
	for _, k := range signers {
		env.Sign(k)
	}
	return env
}

// signRoot returns r's envelope signed by signers, encoded.
func signRoot(t testing.TB, r *Root, signers ...*PrivateKey) []byte {
	t.Helper()
	env, err := r.Envelope()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range signers {
		env.Sign(k)
	}
	return env.Marshal()
}

// editJSON decodes a JSON object, lets edit change it, and encodes it again.
func editJSON(t testing.TB, data []byte, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rootsEqual(a, b *Root) bool {
	if a.Version != b.Version || a.Threshold != b.Threshold || !a.Expires.Equal(b.Expires) || len(a.Keys) != len(b.Keys) {
		return false
	}
	for i := range a.Keys {
		if a.Keys[i].ID != b.Keys[i].ID || !a.Keys[i].Key.Equal(b.Keys[i].Key) {
			return false
		}
	}
	return true
}

func envelopesEqual(a, b *Envelope) bool {
	if a.PayloadType != b.PayloadType || !bytes.Equal(a.Payload, b.Payload) || len(a.Signatures) != len(b.Signatures) {
		return false
	}
	for i := range a.Signatures {
		if a.Signatures[i].KeyID != b.Signatures[i].KeyID || !bytes.Equal(a.Signatures[i].Sig, b.Signatures[i].Sig) {
			return false
		}
	}
	return true
}
