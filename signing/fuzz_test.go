package signing

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// addVectorSeeds adds every *.json file under ../testdata/vectors, when that
// directory exists, to f's seed corpus.
func addVectorSeeds(f *testing.F) {
	f.Helper()
	err := filepath.WalkDir(filepath.Join("..", "testdata", "vectors"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".json") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f.Add(b)
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		f.Fatalf("test vectors: %v", err)
	}
}

func FuzzParseEnvelope(f *testing.F) {
	ks := testKeys(f, 2)
	f.Add(signedEnvelope("text/plain", []byte("hello"), ks...).Marshal())
	f.Add(NewEnvelope("t", nil).Marshal())
	f.Add(signRoot(f, testRoot(1, 1, ks[0]), ks[0]))
	f.Add([]byte(`{"payloadType":"t","payload":"-_-_","signatures":[{"keyid":"k","sig":"+/+/"}]}`))
	f.Add([]byte(`{"payloadType":"t","payload":"YQ","signatures":null}`))
	f.Add([]byte(`{"payloadType":"","payload":""}`))
	f.Add([]byte(`{"payloadType":"t"} {}`))
	f.Add([]byte(`{"PAYLOADTYPE":"\u003c\ud800","payload":"","payload":"YWI="}`))
	f.Add([]byte(`{`))
	f.Add([]byte{})
	addVectorSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := ParseEnvelope(data)
		if err != nil {
			if env != nil {
				t.Fatal("envelope returned with error")
			}
			return
		}
		again := env.Marshal()
		env2, err := ParseEnvelope(again)
		if err != nil {
			t.Fatalf("re-encoded envelope does not parse: %v\n%q", err, again)
		}
		if !envelopesEqual(env, env2) {
			t.Fatalf("round trip differs:\n%+v\n%+v", env, env2)
		}
	})
}

func FuzzParseRoot(f *testing.F) {
	ks := testKeys(f, 3)
	r1 := testRoot(1, 1, ks[0])
	r23 := testRoot(2, 2, ks...)
	p1, err := r1.Payload()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(signRoot(f, r1, ks[0]))
	f.Add(signRoot(f, r23, ks[0], ks[1]))
	f.Add(signRoot(f, r23, ks[0]))
	f.Add(signRoot(f, r1))
	f.Add(signedEnvelope("text/plain", p1, ks[0]).Marshal())
	f.Add(p1) // a bare payload exercises DecodeRootPayload below
	f.Add(editJSON(f, p1, func(m map[string]any) { m["expires"] = "0001-01-01T00:00:00+01:00" }))
	f.Add([]byte(`{"version":1,"expires":"0000-01-01T00:00:00+01:00","threshold":1,"keys":[]}`))
	f.Add([]byte(`{"version":18446744073709551615,"expires":"9999-12-31T23:59:59-23:59","threshold":1,"keys":[]}`))
	f.Add([]byte(`{}`))
	addVectorSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, env, err := ParseRoot(data)
		if err != nil {
			if r != nil || env != nil {
				t.Fatal("root returned with error")
			}
		} else {
			checkRootRoundTrip(t, r)
		}
		// Signatures keep the fuzzer out of the payload decoder above; feed
		// it the input directly too.
		if r, err := DecodeRootPayload(data); err == nil {
			checkRootRoundTrip(t, r)
		}
	})
}

func checkRootRoundTrip(t *testing.T, r *Root) {
	t.Helper()
	p, err := r.Payload()
	if err != nil {
		t.Fatalf("decoded root does not re-encode: %v", err)
	}
	r2, err := DecodeRootPayload(p)
	if err != nil {
		t.Fatalf("re-encoded root does not decode: %v\n%s", err, p)
	}
	if !rootsEqual(r, r2) {
		t.Fatalf("round trip differs:\n%+v\n%+v", r, r2)
	}
}

func FuzzParsePrivateKey(f *testing.F) {
	k := testKey(f, 1)
	plain, err := marshalPrivateKey(k, nil, minLogN)
	if err != nil {
		f.Fatal(err)
	}
	enc, err := marshalPrivateKey(k, []byte("pass"), minLogN)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(plain)
	f.Add(enc)
	f.Add(MarshalPublicKey(k.Public))
	f.Add([]byte(`{"type":"fleetcast-private-key-v1","kdf":"none","aead":"none"}`))
	f.Add([]byte(`null`))
	addVectorSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		// An empty passphrase: an encrypted key fails before scrypt runs.
		got, err := ParsePrivateKey(data, nil)
		if IsEncryptedPrivateKey(data) && err == nil {
			t.Fatal("encrypted key parsed without a passphrase")
		}
		if err != nil {
			if got != nil {
				t.Fatal("key returned with error")
			}
			return
		}
		again, err := MarshalUnencryptedPrivateKey(got), error(nil)
		if err != nil {
			t.Fatal(err)
		}
		got2, err := ParsePrivateKey(again, nil)
		if err != nil {
			t.Fatalf("re-encoded key does not parse: %v", err)
		}
		if got2.Public.ID != got.Public.ID || !got2.Public.Key.Equal(got.Public.Key) {
			t.Fatalf("round trip gives %s, want %s", got2.Public.ID, got.Public.ID)
		}
		if _, err := ParsePublicKey(MarshalPublicKey(got.Public)); err != nil {
			t.Fatalf("public key does not round trip: %v", err)
		}
	})
}

func FuzzParsePublicKey(f *testing.F) {
	k := testKey(f, 1)
	f.Add(MarshalPublicKey(k.Public))
	f.Add([]byte(`{"type":"fleetcast-public-key-v1","keyid":"","ed25519":""}`))
	addVectorSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		pub, err := ParsePublicKey(data)
		if err != nil {
			return
		}
		if pub.ID != DeriveKeyID(pub.Key) {
			t.Fatalf("parsed key id %s does not match the key", pub.ID)
		}
		pub2, err := ParsePublicKey(MarshalPublicKey(pub))
		if err != nil || pub2.ID != pub.ID {
			t.Fatalf("round trip: %v, %v", pub2.ID, err)
		}
	})
}
