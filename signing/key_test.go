package signing

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"regexp"
	"testing"
)

var keyIDPattern = regexp.MustCompile(`^[0-9a-f]{16}$`)

func TestDeriveKeyID(t *testing.T) {
	seen := map[KeyID]byte{}
	for n := byte(0); n < 8; n++ {
		k := testKey(t, n)
		id := DeriveKeyID(k.Public.Key)
		if !keyIDPattern.MatchString(string(id)) {
			t.Errorf("seed %d: key id %q is not 16 lowercase hex characters", n, id)
		}
		if again := DeriveKeyID(append(ed25519.PublicKey(nil), k.Public.Key...)); again != id {
			t.Errorf("seed %d: DeriveKeyID not deterministic: %s then %s", n, id, again)
		}
		if k.Public.ID != id {
			t.Errorf("seed %d: key carries id %s, DeriveKeyID gives %s", n, k.Public.ID, id)
		}
		// The spec: first 8 bytes of SHA-256(label || key), in hex.
		sum := sha256.Sum256(append([]byte(KeyIDLabel), k.Public.Key...))
		if want := KeyID(hex.EncodeToString(sum[:8])); id != want {
			t.Errorf("seed %d: key id %s, want %s", n, id, want)
		}
		if prev, ok := seen[id]; ok {
			t.Errorf("seeds %d and %d give the same key id %s", prev, n, id)
		}
		seen[id] = n
	}
}

func TestDeriveKeyIDDomainSeparated(t *testing.T) {
	k := testKey(t, 1)
	sum := sha256.Sum256(k.Public.Key)
	if id := DeriveKeyID(k.Public.Key); string(id) == hex.EncodeToString(sum[:8]) {
		t.Errorf("key id %s is the plain hash of the key: the label is not hashed", id)
	}
}

func TestNewKeyFromSeed(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	a, err := NewKeyFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewKeyFromSeed(bytes.Clone(seed))
	if err != nil {
		t.Fatal(err)
	}
	if a.Public.ID != b.Public.ID || !a.Public.Key.Equal(b.Public.Key) {
		t.Errorf("same seed, different keys: %s and %s", a.Public.ID, b.Public.ID)
	}
	msg := []byte("fleetcast")
	if !bytes.Equal(a.Sign(msg), b.Sign(msg)) {
		t.Error("same seed, different signatures")
	}
	if !bytes.Equal(a.seed(), seed) {
		t.Error("seed() does not return the seed")
	}
	if c := testKey(t, 8); c.Public.ID == a.Public.ID {
		t.Error("different seeds, same key id")
	}
}

func TestNewKeyFromSeedBadLength(t *testing.T) {
	for _, n := range []int{0, 1, 31, 33, 64} {
		if _, err := NewKeyFromSeed(make([]byte, n)); !errors.Is(err, ErrMalformed) {
			t.Errorf("seed of %d bytes: err = %v, want ErrMalformed", n, err)
		}
	}
}

func TestGenerateKeyUsesRand(t *testing.T) {
	seed := bytes.Repeat([]byte{9}, ed25519.SeedSize)
	g, err := GenerateKey(bytes.NewReader(seed))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewKeyFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	if g.Public.ID != s.Public.ID {
		t.Errorf("GenerateKey from seed reader gives %s, NewKeyFromSeed gives %s", g.Public.ID, s.Public.ID)
	}
	if _, err := GenerateKey(bytes.NewReader(seed[:10])); err == nil {
		t.Error("GenerateKey with a short reader succeeded")
	}
	r, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !keyIDPattern.MatchString(string(r.Public.ID)) {
		t.Errorf("key id %q is not 16 lowercase hex characters", r.Public.ID)
	}
}

func TestNewPublicKey(t *testing.T) {
	k := testKey(t, 1)
	raw := bytes.Clone(k.Public.Key)
	pub, err := NewPublicKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	if pub.ID != k.Public.ID {
		t.Errorf("id %s, want %s", pub.ID, k.Public.ID)
	}
	raw[0] ^= 1 // NewPublicKey copies its input
	if !pub.Key.Equal(k.Public.Key) {
		t.Error("NewPublicKey aliases its input")
	}
	for _, n := range []int{0, 31, 33, 64} {
		if _, err := NewPublicKey(make([]byte, n)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%d bytes: err = %v, want ErrMalformed", n, err)
		}
	}
}

func TestSignVerify(t *testing.T) {
	k, other := testKey(t, 1), testKey(t, 2)
	msg := []byte("message")
	sig := k.Sign(msg)
	tests := []struct {
		name string
		key  PublicKey
		msg  []byte
		sig  []byte
		want bool
	}{
		{"valid", k.Public, msg, sig, true},
		{"other key", other.Public, msg, sig, false},
		{"other message", k.Public, []byte("messagf"), sig, false},
		{"short signature", k.Public, msg, sig[:len(sig)-1], false},
		{"long signature", k.Public, msg, append(bytes.Clone(sig), 0), false},
		{"empty signature", k.Public, msg, nil, false},
		{"flipped bit", k.Public, msg, flipBit(sig, 3), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.key.Verify(tt.msg, tt.sig); got != tt.want {
				t.Errorf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
}

// flipBit returns a copy of b with one bit of byte i flipped.
func flipBit(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x10
	return c
}
