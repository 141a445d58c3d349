package signing

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRootPayloadRoundTrip(t *testing.T) {
	ks := testKeys(t, 3)
	tokyo := time.FixedZone("JST", 9*60*60)
	tests := []struct {
		name string
		root *Root
	}{
		{"1 of 1", testRoot(1, 1, ks[0])},
		{"2 of 3", testRoot(7, 2, ks...)},
		{"3 of 3", testRoot(1<<40, 3, ks...)},
		{"expiry in another zone with nanoseconds", &Root{Version: 2, Expires: time.Date(2031, 5, 6, 7, 8, 9, 123456789, tokyo), Threshold: 1, Keys: publicKeys(ks[1])}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.root.Payload()
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeRootPayload(p)
			if err != nil {
				t.Fatalf("DecodeRootPayload: %v\n%s", err, p)
			}
			if !rootsEqual(got, tt.root) {
				t.Errorf("round trip:\ngot  %+v\nwant %+v", got, tt.root)
			}
			if got.Expires.Location() != time.UTC {
				t.Errorf("expiry decoded in %v, want UTC", got.Expires.Location())
			}
			again, err := got.Payload()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, p) {
				t.Errorf("re-encoding differs:\n%s\n%s", p, again)
			}
			env, err := tt.root.Envelope()
			if err != nil {
				t.Fatal(err)
			}
			if env.PayloadType != RootPayloadType || !bytes.Equal(env.Payload, p) || len(env.Signatures) != 0 {
				t.Errorf("Envelope = %+v, want unsigned envelope of the payload", env)
			}
		})
	}
}

// encodeRootJSON encodes a root payload without the checks Payload makes.
func encodeRootJSON(t testing.TB, r *Root) []byte {
	t.Helper()
	j := rootJSON{Version: r.Version, Expires: r.Expires, Threshold: r.Threshold}
	for _, k := range r.Keys {
		j.Keys = append(j.Keys, rootKeyJSON{KeyID: k.ID, Ed25519: base64.StdEncoding.EncodeToString(k.Key)})
	}
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRootValidate(t *testing.T) {
	ks := testKeys(t, MaxRootKeys+1)
	tests := []struct {
		name string
		root *Root
		want error
	}{
		{"version 0", testRoot(0, 1, ks[0]), ErrMalformed},
		{"threshold 0", testRoot(1, 0, ks[0]), ErrMalformed},
		{"threshold negative", testRoot(1, -1, ks[0]), ErrMalformed},
		{"threshold above keys", testRoot(1, 3, ks[0], ks[1]), ErrMalformed},
		{"duplicate key", testRoot(1, 1, ks[0], ks[1], ks[0]), ErrMalformed},
		{"no expiry", &Root{Version: 1, Threshold: 1, Keys: publicKeys(ks[0])}, ErrMalformed},
		{"no keys", testRoot(1, 1), ErrMalformed},
		{"expiry before year 0 in UTC", &Root{Version: 1, Threshold: 1, Keys: publicKeys(ks[0]), Expires: time.Date(0, 1, 1, 0, 0, 0, 0, time.FixedZone("+1", 3600))}, ErrMalformed},
		{"expiry after year 9999 in UTC", &Root{Version: 1, Threshold: 1, Keys: publicKeys(ks[0]), Expires: time.Date(9999, 12, 31, 23, 0, 0, 0, time.FixedZone("-2", -7200))}, ErrMalformed},
		{"too many keys", testRoot(1, 1, ks...), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.root.Payload(); !errors.Is(err, tt.want) {
				t.Errorf("Payload: err = %v, want %v", err, tt.want)
			}
			if _, err := tt.root.Envelope(); !errors.Is(err, tt.want) {
				t.Errorf("Envelope: err = %v, want %v", err, tt.want)
			}
			if tt.name == "too many keys" {
				return // DecodeRootPayload refuses these as too large; see TestDecodeRootPayloadErrors
			}
			if _, err := DecodeRootPayload(encodeRootJSON(t, tt.root)); !errors.Is(err, tt.want) {
				t.Errorf("DecodeRootPayload: err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := testRoot(1, MaxRootKeys, ks[:MaxRootKeys]...).Payload(); err != nil {
		t.Errorf("root with MaxRootKeys keys: %v", err)
	}
}

func TestDecodeRootPayloadErrors(t *testing.T) {
	ks := testKeys(t, MaxRootKeys+1)
	good := encodeRootJSON(t, testRoot(1, 1, ks[0]))
	editKey := func(f func(k map[string]any)) []byte {
		return editJSON(t, good, func(m map[string]any) { f(m["keys"].([]any)[0].(map[string]any)) })
	}
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"too many keys", encodeRootJSON(t, testRoot(1, 1, ks...)), ErrTooLarge},
		{"unknown field", editJSON(t, good, func(m map[string]any) { m["consistent_snapshot"] = true }), ErrMalformed},
		{"unknown key field", editKey(func(k map[string]any) { k["scheme"] = "ed25519" }), ErrMalformed},
		{"key id mismatch", editKey(func(k map[string]any) { k["keyid"] = string(ks[1].Public.ID) }), ErrMalformed},
		{"key not base64", editKey(func(k map[string]any) { k["ed25519"] = "#" }), ErrMalformed},
		{"key short", editKey(func(k map[string]any) { k["ed25519"] = "AAAA" }), ErrMalformed},
		{"expiry not RFC 3339", editJSON(t, good, func(m map[string]any) { m["expires"] = "tomorrow" }), ErrMalformed},
		{"version negative", editJSON(t, good, func(m map[string]any) { m["version"] = -1 }), ErrMalformed},
		{"version fractional", editJSON(t, good, func(m map[string]any) { m["version"] = 1.5 }), ErrMalformed},
		{"keys null", editJSON(t, good, func(m map[string]any) { m["keys"] = nil }), ErrMalformed},
		{"trailing data", append(bytes.Clone(good), '0'), ErrMalformed},
		{"truncated", good[:len(good)-1], ErrMalformed},
		{"empty", nil, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r, err := DecodeRootPayload(tt.data); !errors.Is(err, tt.want) || r != nil {
				t.Errorf("DecodeRootPayload = %v, %v; want nil, %v", r, err, tt.want)
			}
		})
	}
}

func TestParseRoot(t *testing.T) {
	ks := testKeys(t, 4)
	r1 := testRoot(1, 1, ks[0])
	r23 := testRoot(3, 2, ks[0], ks[1], ks[2])
	otherType := func() []byte {
		p, err := r1.Payload()
		if err != nil {
			t.Fatal(err)
		}
		return signedEnvelope("application/json", p, ks[0]).Marshal()
	}()
	tests := []struct {
		name  string
		data  []byte
		want  *Root
		wants []error
	}{
		{"1 of 1", signRoot(t, r1, ks[0]), r1, nil},
		{"2 of 3", signRoot(t, r23, ks[0], ks[2]), r23, nil},
		{"3 of 3 signed, 2 needed", signRoot(t, r23, ks...), r23, nil},
		{"unsigned", signRoot(t, r1), nil, []error{ErrThreshold}},
		{"1 of 3, 2 needed", signRoot(t, r23, ks[1]), nil, []error{ErrThreshold}},
		{"signed by a key outside the root", signRoot(t, r1, ks[3]), nil, []error{ErrThreshold, ErrUnknownKey}},
		{"wrong payload type", otherType, nil, []error{ErrPayloadType}},
		{"oversized", append(signRoot(t, r1, ks[0]), bytes.Repeat([]byte(" "), MaxRootSize)...), nil, []error{ErrTooLarge}},
		{"not an envelope", []byte(`{"version":1}`), nil, []error{ErrMalformed}},
		{"bad payload", signedEnvelope(RootPayloadType, []byte("{"), ks[0]).Marshal(), nil, []error{ErrMalformed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, env, err := ParseRoot(tt.data)
			if tt.wants == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !rootsEqual(got, tt.want) {
					t.Errorf("root %+v, want %+v", got, tt.want)
				}
				if env == nil || env.PayloadType != RootPayloadType {
					t.Errorf("envelope %+v", env)
				}
				return
			}
			if got != nil || env != nil {
				t.Errorf("returned root %v, envelope %v with error", got, env)
			}
			for _, want := range tt.wants {
				if !errors.Is(err, want) {
					t.Errorf("err = %v, want %v", err, want)
				}
			}
		})
	}
}

func TestParseRootTamperedPayload(t *testing.T) {
	k := testKey(t, 1)
	env, err := ParseEnvelope(signRoot(t, testRoot(1, 1, k), k))
	if err != nil {
		t.Fatal(err)
	}
	// Same keys, later expiry: valid JSON, but not what was signed.
	env.Payload = bytes.Replace(env.Payload, []byte("2030"), []byte("2099"), 1)
	_, _, err = ParseRoot(env.Marshal())
	if !errors.Is(err, ErrBadSignature) || !errors.Is(err, ErrThreshold) {
		t.Errorf("err = %v, want ErrBadSignature and ErrThreshold", err)
	}
}

func TestVerifyEnvelope(t *testing.T) {
	ks := testKeys(t, 4)
	a, b, c, outsider := ks[0], ks[1], ks[2], ks[3]
	const typ = "application/vnd.fleetcast.test+json"
	payload := []byte(`{"release":42}`)
	one := testRoot(1, 1, a)
	twoOfThree := testRoot(1, 2, a, b, c)
	sign := func(signers ...*PrivateKey) *Envelope { return signedEnvelope(typ, payload, signers...) }
	tamperPayload := func(env *Envelope) *Envelope {
		env.Payload = []byte(`{"release":43}`)
		return env
	}
	tamperSig := func(i int) func(*Envelope) *Envelope {
		return func(env *Envelope) *Envelope {
			env.Signatures[i].Sig = flipBit(env.Signatures[i].Sig, 10)
			return env
		}
	}
	duplicate := func(env *Envelope) *Envelope {
		env.Signatures = append(env.Signatures, env.Signatures[0])
		return env
	}
	tests := []struct {
		name      string
		root      *Root
		env       *Envelope
		typ       string
		wantIDs   []KeyID
		wants     []error // all must match
		notWants  []error // none may match
		wantInMsg string
	}{
		{name: "1 of 1", root: one, env: sign(a), wantIDs: []KeyID{a.Public.ID}},
		{name: "2 of 3", root: twoOfThree, env: sign(a, c), wantIDs: []KeyID{a.Public.ID, c.Public.ID}},
		{name: "3 of 3 signed, 2 needed", root: twoOfThree, env: sign(c, b, a), wantIDs: []KeyID{c.Public.ID, b.Public.ID, a.Public.ID}},
		{name: "2 of 3 with an outsider", root: twoOfThree, env: sign(outsider, b, c), wantIDs: []KeyID{b.Public.ID, c.Public.ID}},
		{name: "2 of 3 with one bad signature", root: twoOfThree, env: tamperSig(0)(sign(a, b, c)), wantIDs: []KeyID{b.Public.ID, c.Public.ID}},
		{name: "tampered payload", root: one, env: tamperPayload(sign(a)),
			wants: []error{ErrBadSignature, ErrThreshold}, wantInMsg: "does not verify"},
		{name: "tampered payload, 2 of 3", root: twoOfThree, env: tamperPayload(sign(a, b)),
			wants: []error{ErrBadSignature, ErrThreshold}},
		{name: "tampered payload type", root: one, env: func() *Envelope { e := sign(a); e.PayloadType = "text/plain"; return e }(), typ: "text/plain",
			wants: []error{ErrBadSignature, ErrThreshold}},
		{name: "tampered signature", root: one, env: tamperSig(0)(sign(a)),
			wants: []error{ErrBadSignature, ErrThreshold}, notWants: []error{ErrUnknownKey}},
		{name: "truncated signature", root: one, env: func() *Envelope { e := sign(a); e.Signatures[0].Sig = e.Signatures[0].Sig[:32]; return e }(),
			wants: []error{ErrBadSignature}},
		{name: "signature under another key's id", root: twoOfThree, env: func() *Envelope {
			e := sign(a)
			e.Signatures[0].KeyID = b.Public.ID
			return e
		}(), wants: []error{ErrBadSignature}},
		{name: "only an unknown key", root: one, env: sign(outsider),
			wants: []error{ErrUnknownKey, ErrThreshold}, notWants: []error{ErrBadSignature}, wantInMsg: string(outsider.Public.ID)},
		{name: "below threshold", root: twoOfThree, env: sign(b),
			wants: []error{ErrThreshold}, notWants: []error{ErrBadSignature, ErrUnknownKey}, wantInMsg: "1 valid signature(s) from trusted keys, 2 required"},
		{name: "unsigned", root: one, env: sign(),
			wants: []error{ErrThreshold}, notWants: []error{ErrBadSignature, ErrUnknownKey}},
		{name: "same key twice to reach 2", root: twoOfThree, env: duplicate(sign(a)),
			wants: []error{ErrThreshold}, notWants: []error{ErrBadSignature}, wantInMsg: "more than once"},
		{name: "same key three times to reach 2", root: twoOfThree, env: duplicate(duplicate(sign(a))),
			wants: []error{ErrThreshold}, wantInMsg: "more than once"},
		{name: "wrong payload type", root: one, env: sign(a), typ: RootPayloadType,
			wants: []error{ErrPayloadType}, notWants: []error{ErrThreshold}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := typ
			if tt.typ != "" {
				want = tt.typ
			}
			ids, err := tt.root.VerifyEnvelope(tt.env, want)
			if tt.wants == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(ids, tt.wantIDs) {
					t.Errorf("ids %v, want %v", ids, tt.wantIDs)
				}
				return
			}
			if err == nil {
				t.Fatalf("verified with ids %v", ids)
			}
			for _, w := range tt.wants {
				if !errors.Is(err, w) {
					t.Errorf("err = %v, want %v", err, w)
				}
			}
			for _, nw := range tt.notWants {
				if errors.Is(err, nw) {
					t.Errorf("err = %v, should not match %v", err, nw)
				}
			}
			if !strings.Contains(err.Error(), tt.wantInMsg) {
				t.Errorf("err = %q, want it to mention %q", err, tt.wantInMsg)
			}
		})
	}
}

func TestThresholdError(t *testing.T) {
	ks := testKeys(t, 3)
	r := testRoot(1, 2, ks[0], ks[1])
	env := signedEnvelope("t", []byte("p"), ks[0], ks[2])
	_, err := r.VerifyEnvelope(env, "t")
	var te *ThresholdError
	if !errors.As(err, &te) {
		t.Fatalf("err = %v (%T), want *ThresholdError", err, err)
	}
	if te.Valid != 1 || te.Threshold != 2 || len(te.Problems) != 1 {
		t.Errorf("ThresholdError = %+v, want 1 valid of 2 and one problem", te)
	}
	wrapped := fmt.Errorf("verify manifest: %w", err)
	// One valid signature and one by an unknown key: too few, nobody to blame.
	if !errors.Is(wrapped, ErrThreshold) || errors.Is(wrapped, ErrUnknownKey) || errors.Is(wrapped, ErrRootExpired) {
		t.Errorf("wrapped ThresholdError matches the wrong sentinels: %v", wrapped)
	}
	_, err = r.VerifyEnvelope(signedEnvelope("t", []byte("p"), ks[2]), "t")
	if !errors.Is(err, ErrUnknownKey) {
		t.Errorf("signed only by an unknown key: %v, want ErrUnknownKey", err)
	}
}

func TestVerifyEnvelopeInvalidRoot(t *testing.T) {
	k := testKey(t, 1)
	env := signedEnvelope("t", []byte("p"))
	for _, r := range []*Root{{}, {Version: 1, Expires: testExpires, Keys: publicKeys(k)}, {Threshold: -1}} {
		if ids, err := r.VerifyEnvelope(env, "t"); !errors.Is(err, ErrMalformed) {
			t.Errorf("root with threshold %d: ids %v, err %v; want ErrMalformed", r.Threshold, ids, err)
		}
	}
}

func TestCheckExpiry(t *testing.T) {
	r := testRoot(4, 1, testKey(t, 1))
	tests := []struct {
		name    string
		now     time.Time
		expired bool
	}{
		{"long before", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{"a second before", testExpires.Add(-time.Second), false},
		{"at expiry", testExpires, false},
		{"a nanosecond after", testExpires.Add(time.Nanosecond), true},
		{"long after", time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{"after, in another zone", testExpires.Add(time.Minute).In(time.FixedZone("X", -10*60*60)), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := r.CheckExpiry(tt.now)
			if got := errors.Is(err, ErrRootExpired); got != tt.expired || (err != nil) != tt.expired {
				t.Fatalf("CheckExpiry(%v) = %v, want expired %v", tt.now, err, tt.expired)
			}
			if err != nil && (!strings.Contains(err.Error(), "version 4") || !strings.Contains(err.Error(), "2030-01-02T03:04:05Z")) {
				t.Errorf("message %q does not name the version and expiry", err)
			}
		})
	}
}

func TestRootKeyLookup(t *testing.T) {
	ks := testKeys(t, 3)
	r := testRoot(1, 1, ks[0], ks[1])
	if k, ok := r.Key(ks[1].Public.ID); !ok || !k.Key.Equal(ks[1].Public.Key) {
		t.Errorf("Key(%s) = %v, %v", ks[1].Public.ID, k, ok)
	}
	if _, ok := r.Key(ks[2].Public.ID); ok {
		t.Error("Key found a key that is not in the root")
	}
	if want := string(ks[0].Public.ID) + ", " + string(ks[1].Public.ID); r.KeyIDs() != want {
		t.Errorf("KeyIDs = %q, want %q", r.KeyIDs(), want)
	}
}
