package signing

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestPAE(t *testing.T) {
	tests := []struct {
		name, payloadType, payload, want string
	}{
		// Known answer from the DSSE protocol specification.
		{"dsse spec", "http://example.com/HelloWorld", "hello world", "DSSEv1 29 http://example.com/HelloWorld 11 hello world"},
		{"empty", "", "", "DSSEv1 0  0 "},
		{"root", RootPayloadType, "{}", "DSSEv1 38 " + RootPayloadType + " 2 {}"},
		{"spaces and binary", "a b", "\x00 \xff", "DSSEv1 3 a b 3 \x00 \xff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PAE(tt.payloadType, []byte(tt.payload)); string(got) != tt.want {
				t.Errorf("PAE = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPAELongPayload(t *testing.T) {
	payload := bytes.Repeat([]byte("x"), 12345)
	want := "DSSEv1 4 type 12345 " + string(payload)
	if got := PAE("type", payload); string(got) != want {
		t.Errorf("PAE of a 12345-byte payload = %.40q..., want %.40q...", got, want)
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	ks := testKeys(t, 3)
	tests := []struct {
		name string
		env  *Envelope
	}{
		{"unsigned", NewEnvelope("text/plain", []byte("hello"))},
		{"empty payload", signedEnvelope("text/plain", []byte{}, ks[0])},
		{"one signature", signedEnvelope("text/plain", []byte("hello"), ks[0])},
		{"three signatures", signedEnvelope(RootPayloadType, []byte(`{"a":1}`), ks...)},
		{"binary payload", signedEnvelope("application/octet-stream", []byte{0, 0xff, 0xfb, 0xef, '\n', '"'}, ks[1])},
		{"html in strings", NewEnvelope("<type>&", []byte("<p>"))},
		{"foreign signature", &Envelope{PayloadType: "t", Payload: []byte("p"), Signatures: []Signature{{KeyID: "not-a-key-id", Sig: []byte{1, 2, 3}}, {KeyID: "x", Sig: nil}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.env.Marshal()
			if bytes.Count(data, []byte("\n")) != 1 || data[len(data)-1] != '\n' {
				t.Errorf("Marshal is not one line with a newline: %q", data)
			}
			got, err := ParseEnvelope(data)
			if err != nil {
				t.Fatalf("ParseEnvelope: %v\n%s", err, data)
			}
			if !envelopesEqual(got, tt.env) {
				t.Errorf("round trip:\ngot  %+v\nwant %+v", got, tt.env)
			}
			r, err := ReadEnvelope(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("ReadEnvelope: %v", err)
			}
			if !envelopesEqual(r, tt.env) {
				t.Errorf("ReadEnvelope:\ngot  %+v\nwant %+v", r, tt.env)
			}
		})
	}
}

func TestMarshalEmptySignatures(t *testing.T) {
	data := NewEnvelope("t", []byte("p")).Marshal()
	if !bytes.Contains(data, []byte(`"signatures":[]`)) {
		t.Errorf("unsigned envelope does not carry an empty signatures list: %s", data)
	}
}

func TestParseEnvelopeBase64Variants(t *testing.T) {
	// These bytes encode with '+' and '/' in standard base64 and need padding.
	payload := []byte{0xfb, 0xff, 0xbf, 0xfe, 0x3e}
	sig := []byte{0xff, 0xfe, 0xfd, 0xfc}
	for _, enc := range []struct {
		name string
		enc  *base64.Encoding
	}{
		{"standard", base64.StdEncoding},
		{"url-safe", base64.URLEncoding},
		{"standard unpadded", base64.RawStdEncoding},
		{"url-safe unpadded", base64.RawURLEncoding},
	} {
		t.Run(enc.name, func(t *testing.T) {
			data := fmt.Sprintf(`{"payloadType":"t","payload":%q,"signatures":[{"keyid":"k","sig":%q}]}`,
				enc.enc.EncodeToString(payload), enc.enc.EncodeToString(sig))
			env, err := ParseEnvelope([]byte(data))
			if err != nil {
				t.Fatalf("%v\n%s", err, data)
			}
			if !bytes.Equal(env.Payload, payload) || !bytes.Equal(env.Signatures[0].Sig, sig) {
				t.Errorf("decoded payload %x sig %x, want %x %x", env.Payload, env.Signatures[0].Sig, payload, sig)
			}
		})
	}
}

func TestParseEnvelopeErrors(t *testing.T) {
	k := testKey(t, 1)
	good := signedEnvelope("text/plain", []byte("hello"), k).Marshal()
	tooMany := NewEnvelope("t", []byte("p"))
	for i := range MaxSignatures + 1 {
		tooMany.Signatures = append(tooMany.Signatures, Signature{KeyID: KeyID(fmt.Sprint(i)), Sig: []byte{1}})
	}
	atLimit := &Envelope{PayloadType: "t", Payload: []byte("p"), Signatures: tooMany.Signatures[:MaxSignatures]}
	if _, err := ParseEnvelope(atLimit.Marshal()); err != nil {
		t.Errorf("envelope with MaxSignatures signatures: %v", err)
	}
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"trailing data", append(bytes.Clone(good), `{"payloadType":"x"}`...), ErrMalformed},
		{"trailing garbage", append(bytes.Clone(good), 'x'), ErrMalformed},
		{"two values", append(bytes.Clone(good), good...), ErrMalformed},
		{"unknown field", editJSON(t, good, func(m map[string]any) { m["payloadtype2"] = "x" }), ErrMalformed},
		{"unknown signature field", []byte(`{"payloadType":"t","payload":"","signatures":[{"keyid":"k","sig":"","extra":1}]}`), ErrMalformed},
		{"truncated", good[:len(good)-3], ErrMalformed},
		{"truncated to one byte", good[:1], ErrMalformed},
		{"empty", nil, ErrMalformed},
		{"white space", []byte(" \n"), ErrMalformed},
		{"array", []byte(`[]`), ErrMalformed},
		{"null", []byte(`null`), ErrMalformed},
		{"too many signatures", tooMany.Marshal(), ErrTooLarge},
		{"oversized", append(bytes.Clone(good), bytes.Repeat([]byte(" "), MaxEnvelopeSize)...), ErrTooLarge},
		{"missing payloadType", editJSON(t, good, func(m map[string]any) { delete(m, "payloadType") }), ErrMalformed},
		{"empty payloadType", editJSON(t, good, func(m map[string]any) { m["payloadType"] = "" }), ErrMalformed},
		{"long payloadType", editJSON(t, good, func(m map[string]any) { m["payloadType"] = strings.Repeat("t", 257) }), ErrTooLarge},
		{"payloadType not a string", editJSON(t, good, func(m map[string]any) { m["payloadType"] = 1 }), ErrMalformed},
		{"payload not base64", editJSON(t, good, func(m map[string]any) { m["payload"] = "a*b=" }), ErrMalformed},
		{"payload mixed alphabets", editJSON(t, good, func(m map[string]any) { m["payload"] = "+-/_" }), ErrMalformed},
		{"payload bad padding", editJSON(t, good, func(m map[string]any) { m["payload"] = "aGVsbG8===" }), ErrMalformed},
		{"signature not base64", []byte(`{"payloadType":"t","payload":"","signatures":[{"keyid":"k","sig":"*"}]}`), ErrMalformed},
		{"signatures not a list", []byte(`{"payloadType":"t","payload":"","signatures":{}}`), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := ParseEnvelope(tt.data)
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			if env != nil {
				t.Errorf("returned an envelope with error")
			}
		})
	}
	t.Run("long payloadType at limit", func(t *testing.T) {
		data := editJSON(t, good, func(m map[string]any) { m["payloadType"] = strings.Repeat("t", 256) })
		if _, err := ParseEnvelope(data); err != nil {
			t.Errorf("256-byte payloadType: %v", err)
		}
	})
}

func TestReadEnvelopeTooLarge(t *testing.T) {
	r := io.MultiReader(strings.NewReader(`{"payloadType":"t","payload":"`), infiniteReader('A'))
	if _, err := ReadEnvelope(r); !errors.Is(err, ErrTooLarge) {
		t.Errorf("err = %v, want ErrTooLarge", err)
	}
}

type infiniteReader byte

func (c infiniteReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

func TestReadEnvelopeReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	r := io.MultiReader(strings.NewReader(`{"payloadType"`), errReader{boom})
	if _, err := ReadEnvelope(r); !errors.Is(err, boom) {
		t.Errorf("err = %v, want %v", err, boom)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestEnvelopeSign(t *testing.T) {
	a, b := testKey(t, 1), testKey(t, 2)
	env := NewEnvelope("text/plain", []byte("hello"))
	if env.SignedBy(a.Public.ID) {
		t.Error("unsigned envelope reports a signature")
	}
	if !env.Sign(a) {
		t.Fatal("first Sign returned false")
	}
	first := bytes.Clone(env.Signatures[0].Sig)
	if env.Sign(a) {
		t.Error("second Sign by the same key returned true")
	}
	if len(env.Signatures) != 1 || !bytes.Equal(env.Signatures[0].Sig, first) {
		t.Errorf("second Sign by the same key changed the signatures: %d", len(env.Signatures))
	}
	if !env.Sign(b) {
		t.Error("Sign by a second key returned false")
	}
	if len(env.Signatures) != 2 || !env.SignedBy(a.Public.ID) || !env.SignedBy(b.Public.ID) {
		t.Errorf("signatures %+v, want one each by %s and %s", env.Signatures, a.Public.ID, b.Public.ID)
	}
	msg := PAE(env.PayloadType, env.Payload)
	for i, k := range []*PrivateKey{a, b} {
		if s := env.Signatures[i]; s.KeyID != k.Public.ID || !k.Public.Verify(msg, s.Sig) {
			t.Errorf("signature %d is not a valid signature by %s over the PAE", i, k.Public.ID)
		}
	}
	if k := testKey(t, 3); env.SignedBy(k.Public.ID) {
		t.Error("SignedBy reports a key that did not sign")
	}
}

func TestParseEnvelopeRequiresKeyID(t *testing.T) {
	for _, in := range []string{
		`{"payloadType":"t","payload":"cA==","signatures":[{"keyid":"","sig":"AQID"}]}`,
		`{"payloadType":"t","payload":"cA==","signatures":[{"sig":"AQID"}]}`,
	} {
		if _, err := ParseEnvelope([]byte(in)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "keyid") {
			t.Errorf("ParseEnvelope(%s) = %v, want a keyid error", in, err)
		}
	}
}

func TestParseEnvelopeLenientAndStrictParts(t *testing.T) {
	// Non-canonical trailing bits are accepted in envelopes, as DSSE parsers
	// must be lenient; the decoded bytes are what signatures cover.
	env, err := ParseEnvelope([]byte(`{"payloadType":"t","payload":"aGVsbG9=","signatures":[]}`))
	if err != nil || string(env.Payload) != "hello" {
		t.Fatalf("non-canonical payload: %v %q", err, env)
	}
	for _, keyid := range []string{"a b", "a\\u001b[2J", "\\u00e9t\\u00e9"} {
		in := `{"payloadType":"t","payload":"cA==","signatures":[{"keyid":"` + keyid + `","sig":"AQID"}]}`
		if _, err := ParseEnvelope([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("keyid %q: %v, want malformed (printable ASCII only)", keyid, err)
		}
	}
}
