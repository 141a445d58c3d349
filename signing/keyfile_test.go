package signing

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

var testPassphrase = []byte("correct horse battery staple")

// marshalTestPrivateKey encrypts with the cheapest accepted scrypt cost.
func marshalTestPrivateKey(t testing.TB, k *PrivateKey, pass []byte) []byte {
	t.Helper()
	b, err := marshalPrivateKey(k, pass, minLogN)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPublicKeyFileRoundTrip(t *testing.T) {
	for n := byte(0); n < 4; n++ {
		k := testKey(t, n)
		data := MarshalPublicKey(k.Public)
		got, err := ParsePublicKey(data)
		if err != nil {
			t.Fatalf("seed %d: %v\n%s", n, err, data)
		}
		if got.ID != k.Public.ID || !got.Key.Equal(k.Public.Key) {
			t.Errorf("seed %d: round trip gives %s, want %s", n, got.ID, k.Public.ID)
		}
	}
}

func TestParsePublicKeyErrors(t *testing.T) {
	k, other := testKey(t, 1), testKey(t, 2)
	good := MarshalPublicKey(k.Public)
	edit := func(f func(m map[string]any)) []byte { return editJSON(t, good, f) }
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"too large", append(bytes.Clone(good), bytes.Repeat([]byte(" "), MaxKeyFileSize)...), ErrTooLarge},
		{"unknown field", edit(func(m map[string]any) { m["comment"] = "x" }), ErrMalformed},
		{"wrong type", edit(func(m map[string]any) { m["type"] = PrivateKeyFileType }), ErrMalformed},
		{"missing type", edit(func(m map[string]any) { delete(m, "type") }), ErrMalformed},
		{"wrong key id", edit(func(m map[string]any) { m["keyid"] = string(other.Public.ID) }), ErrMalformed},
		{"missing key id", edit(func(m map[string]any) { delete(m, "keyid") }), ErrMalformed},
		{"other key", edit(func(m map[string]any) { m["ed25519"] = base64.StdEncoding.EncodeToString(other.Public.Key) }), ErrMalformed},
		{"short key", edit(func(m map[string]any) { m["ed25519"] = base64.StdEncoding.EncodeToString(k.Public.Key[:31]) }), ErrMalformed},
		{"bad base64", edit(func(m map[string]any) { m["ed25519"] = "!!!" }), ErrMalformed},
		{"trailing data", append(bytes.Clone(good), "{}"...), ErrMalformed},
		{"truncated", good[:len(good)/2], ErrMalformed},
		{"empty", nil, ErrMalformed},
		{"private key file", marshalTestPrivateKey(t, k, nil), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParsePublicKey(tt.data); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestPrivateKeyFileRoundTrip(t *testing.T) {
	k := testKey(t, 3)
	tests := []struct {
		name      string
		pass      []byte
		encrypted bool
	}{
		{"encrypted", testPassphrase, true},
		{"one-byte passphrase", []byte("x"), true},
		{"unencrypted nil passphrase", nil, false},
		{"unencrypted empty passphrase", []byte{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := marshalTestPrivateKey(t, k, tt.pass)
			if got := IsEncryptedPrivateKey(data); got != tt.encrypted {
				t.Errorf("IsEncryptedPrivateKey = %v, want %v", got, tt.encrypted)
			}
			if !tt.encrypted && !bytes.Contains(data, []byte(base64.StdEncoding.EncodeToString(k.seed()))) {
				t.Error("unencrypted file does not hold the seed")
			}
			if tt.encrypted && bytes.Contains(data, []byte(base64.StdEncoding.EncodeToString(k.seed()))) {
				t.Error("encrypted file holds the seed in the clear")
			}
			got, err := ParsePrivateKey(data, tt.pass)
			if err != nil {
				t.Fatalf("ParsePrivateKey: %v\n%s", err, data)
			}
			if got.Public.ID != k.Public.ID || !bytes.Equal(got.seed(), k.seed()) {
				t.Errorf("round trip gives key %s, want %s", got.Public.ID, k.Public.ID)
			}
		})
	}
}

func TestMarshalPrivateKeyDefaultCost(t *testing.T) {
	if testing.Short() {
		t.Skip("runs scrypt at the default cost")
	}
	k := testKey(t, 4)
	data, err := MarshalPrivateKey(k, testPassphrase)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`"log_n": 15`)) {
		t.Errorf("default cost is not log_n 15:\n%s", data)
	}
	got, err := ParsePrivateKey(data, testPassphrase)
	if err != nil {
		t.Fatal(err)
	}
	if got.Public.ID != k.Public.ID {
		t.Errorf("round trip gives %s, want %s", got.Public.ID, k.Public.ID)
	}
}

func TestMarshalPrivateKeyFreshSaltAndNonce(t *testing.T) {
	k := testKey(t, 3)
	a, b := marshalTestPrivateKey(t, k, testPassphrase), marshalTestPrivateKey(t, k, testPassphrase)
	if bytes.Equal(a, b) {
		t.Error("two encryptions of one key are identical: salt and nonce are not random")
	}
}

func TestParsePrivateKeyPassphrase(t *testing.T) {
	k := testKey(t, 3)
	data := marshalTestPrivateKey(t, k, testPassphrase)
	tests := []struct {
		name string
		pass []byte
		want error
	}{
		{"wrong passphrase", []byte("wrong"), ErrWrongPassphrase},
		{"passphrase with extra byte", append(bytes.Clone(testPassphrase), '\n'), ErrWrongPassphrase},
		{"nil passphrase", nil, ErrPassphraseRequired},
		{"empty passphrase", []byte{}, ErrPassphraseRequired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePrivateKey(data, tt.pass)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), string(k.Public.ID)) {
				t.Errorf("error %q does not name the key", err)
			}
		})
	}
	// A passphrase given for an unencrypted key is not needed and not an error.
	plain := marshalTestPrivateKey(t, k, nil)
	if _, err := ParsePrivateKey(plain, testPassphrase); err != nil {
		t.Errorf("unencrypted key with a passphrase: %v", err)
	}
}

func TestParsePrivateKeyTampered(t *testing.T) {
	k, other := testKey(t, 3), testKey(t, 4)
	enc := marshalTestPrivateKey(t, k, testPassphrase)
	plain := marshalTestPrivateKey(t, k, nil)
	otherPub := base64.StdEncoding.EncodeToString(other.Public.Key)
	swapKey := func(m map[string]any) { m["ed25519_public"], m["keyid"] = otherPub, string(other.Public.ID) }
	scrypt := func(f func(s map[string]any)) func(m map[string]any) {
		return func(m map[string]any) { f(m["scrypt"].(map[string]any)) }
	}
	flipB64 := func(field string) func(m map[string]any) {
		return func(m map[string]any) {
			b, err := base64.StdEncoding.DecodeString(m[field].(string))
			if err != nil {
				t.Fatal(err)
			}
			m[field] = base64.StdEncoding.EncodeToString(flipBit(b, 0))
		}
	}
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"key id of another key", editJSON(t, enc, func(m map[string]any) { m["keyid"] = string(other.Public.ID) }), ErrMalformed},
		{"key id malformed", editJSON(t, enc, func(m map[string]any) { m["keyid"] = "zz" }), ErrMalformed},
		{"public key of another key with its id", editJSON(t, enc, swapKey), ErrWrongPassphrase},
		{"public key of another key, own id", editJSON(t, enc, func(m map[string]any) { m["ed25519_public"] = otherPub }), ErrMalformed},
		{"sealed bytes flipped", editJSON(t, enc, flipB64("sealed")), ErrWrongPassphrase},
		{"sealed bytes truncated", editJSON(t, enc, func(m map[string]any) { m["sealed"] = m["sealed"].(string)[:8] }), ErrWrongPassphrase},
		{"sealed bytes missing", editJSON(t, enc, func(m map[string]any) { delete(m, "sealed") }), ErrWrongPassphrase},
		{"sealed not base64", editJSON(t, enc, func(m map[string]any) { m["sealed"] = "%%%" }), ErrMalformed},
		{"nonce flipped", editJSON(t, enc, flipB64("nonce")), ErrWrongPassphrase},
		{"nonce short", editJSON(t, enc, func(m map[string]any) { m["nonce"] = "AAAA" }), ErrMalformed},
		{"salt flipped", editJSON(t, enc, scrypt(func(s map[string]any) {
			b, _ := base64.StdEncoding.DecodeString(s["salt"].(string))
			s["salt"] = base64.StdEncoding.EncodeToString(flipBit(b, 0))
		})), ErrWrongPassphrase},
		{"salt short", editJSON(t, enc, scrypt(func(s map[string]any) { s["salt"] = "AAAA" })), ErrMalformed},
		{"log_n 30", editJSON(t, enc, scrypt(func(s map[string]any) { s["log_n"] = 30 })), ErrMalformed},
		{"log_n 9", editJSON(t, enc, scrypt(func(s map[string]any) { s["log_n"] = 9 })), ErrMalformed},
		{"log_n negative", editJSON(t, enc, scrypt(func(s map[string]any) { s["log_n"] = -1 })), ErrMalformed},
		{"r 1", editJSON(t, enc, scrypt(func(s map[string]any) { s["r"] = 1 })), ErrMalformed},
		{"p 1000", editJSON(t, enc, scrypt(func(s map[string]any) { s["p"] = 1000 })), ErrMalformed},
		{"scrypt missing", editJSON(t, enc, func(m map[string]any) { delete(m, "scrypt") }), ErrMalformed},
		{"kdf unknown", editJSON(t, enc, func(m map[string]any) { m["kdf"] = "argon2id" }), ErrMalformed},
		{"aead unknown", editJSON(t, enc, func(m map[string]any) { m["aead"] = "aes-gcm" }), ErrMalformed},
		{"aead none with scrypt", editJSON(t, enc, func(m map[string]any) { m["aead"] = "none" }), ErrMalformed},
		{"unknown field", editJSON(t, enc, func(m map[string]any) { m["comment"] = "x" }), ErrMalformed},
		{"unknown scrypt field", editJSON(t, enc, scrypt(func(s map[string]any) { s["n"] = 1 << 30 })), ErrMalformed},
		{"wrong type", editJSON(t, enc, func(m map[string]any) { m["type"] = PublicKeyFileType }), ErrMalformed},
		{"too large", append(bytes.Clone(enc), bytes.Repeat([]byte("\n"), MaxKeyFileSize)...), ErrTooLarge},
		{"trailing data", append(bytes.Clone(enc), "[]"...), ErrMalformed},
		{"truncated", enc[:len(enc)-3], ErrMalformed},
		{"public key file", MarshalPublicKey(k.Public), ErrMalformed},
		{"unencrypted: public key of another key with its id", editJSON(t, plain, swapKey), ErrMalformed},
		{"unencrypted: seed flipped", editJSON(t, plain, flipB64("seed")), ErrMalformed},
		{"unencrypted: seed short", editJSON(t, plain, func(m map[string]any) { m["seed"] = "AAAA" }), ErrMalformed},
		{"unencrypted: seed missing", editJSON(t, plain, func(m map[string]any) { delete(m, "seed") }), ErrMalformed},
		{"unencrypted: seed not base64", editJSON(t, plain, func(m map[string]any) { m["seed"] = "-_-_" }), ErrMalformed},
		{"unencrypted: kdf none, aead xchacha", editJSON(t, plain, func(m map[string]any) { m["aead"] = aeadXChaCha }), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePrivateKey(tt.data, testPassphrase)
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			if got != nil {
				t.Errorf("returned key %s with error", got.Public.ID)
			}
		})
	}
}

func TestIsEncryptedPrivateKey(t *testing.T) {
	k := testKey(t, 5)
	enc := marshalTestPrivateKey(t, k, testPassphrase)
	tests := []struct {
		name string
		data []byte
		want bool
	}{
		{"encrypted", enc, true},
		{"unencrypted", marshalTestPrivateKey(t, k, nil), false},
		{"public key file", MarshalPublicKey(k.Public), false},
		{"empty", nil, false},
		{"not json", []byte("-----BEGIN PRIVATE KEY-----"), false},
		{"empty object", []byte("{}"), false},
		{"null", []byte("null"), false},
		{"other type", editJSON(t, enc, func(m map[string]any) { m["type"] = "something-else" }), false},
		{"unknown field", editJSON(t, enc, func(m map[string]any) { m["comment"] = "x" }), false},
		{"too large", append(bytes.Clone(enc), bytes.Repeat([]byte(" "), MaxKeyFileSize)...), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsEncryptedPrivateKey(tt.data); got != tt.want {
				t.Errorf("IsEncryptedPrivateKey = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestKeyFilesRefuseLooseBase64AndMixedVariants(t *testing.T) {
	k := testKey(t, 5)
	pub := string(MarshalPublicKey(k.Public))
	enc := b64.EncodeToString(k.Public.Key)
	broken := strings.Replace(pub, enc, enc[:20]+`\n`+enc[20:], 1) // an escaped line break
	if _, err := ParsePublicKey([]byte(broken)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "line break") {
		t.Errorf("public key with a line break in its base64: %v", err)
	}
	plain := string(MarshalUnencryptedPrivateKey(k))
	mixed := strings.Replace(plain, `"seed"`, `"nonce": "AAAA", "seed"`, 1)
	if _, err := ParsePrivateKey([]byte(mixed), nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("unencrypted key with a nonce: %v", err)
	}
}
