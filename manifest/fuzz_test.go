package manifest_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/signing"
	"github.com/fleetcast/fleetcast/signing/signingtest"
)

// vectorSeeds returns every manifest.json and root.json under the test
// vectors and, with payloads set, the payloads their envelopes carry.
func vectorSeeds(f *testing.F, payloads bool) [][]byte {
	f.Helper()
	var seeds [][]byte
	err := filepath.WalkDir(vectorsDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if name := d.Name(); name != "manifest.json" && name != "root.json" && filepath.Base(filepath.Dir(p)) != "roots" {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		seeds = append(seeds, data)
		if env, err := signing.ParseEnvelope(data); err == nil && payloads {
			seeds = append(seeds, env.Payload)
		}
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	if len(seeds) == 0 {
		f.Fatalf("no seeds under %s", vectorsDir)
	}
	return seeds
}

// FuzzDecode checks that Decode never panics and that whatever it accepts
// encodes to a payload that decodes to the same manifest.
func FuzzDecode(f *testing.F) {
	for _, s := range vectorSeeds(f, true) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := manifest.Decode(payload)
		if err != nil {
			return
		}
		enc, err := manifest.Encode(m)
		if err != nil {
			t.Fatalf("Decode accepted a manifest that Encode refuses: %v\n%s", err, payload)
		}
		back, err := manifest.Decode(enc)
		if err != nil {
			t.Fatalf("Encode output does not decode: %v\n%s", err, enc)
		}
		if !manifestsEqual(m, back) {
			t.Fatalf("round trip changed the manifest:\n got %+v\nwant %+v", back, m)
		}
		again, err := manifest.Encode(back)
		if err != nil || !bytes.Equal(again, enc) {
			t.Fatalf("encoding is not stable (%v):\n%s\n%s", err, enc, again)
		}
	})
}

// FuzzVerify checks that Verify never panics and never accepts an envelope
// unless it carries a valid signature by the root's only key over its payload.
func FuzzVerify(f *testing.F) {
	key := signingtest.Key(f, 1) // the key of the ok-1of1 and ok-artifact vectors
	root := signingtest.Root(1, 1, testExpires, key)
	for _, s := range vectorSeeds(f, false) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := manifest.Verify(data, root, testNow)
		if err != nil {
			if v != nil {
				t.Fatalf("Verify returned a manifest with error %v", err)
			}
			return
		}
		env, err := signing.ParseEnvelope(data)
		if err != nil {
			t.Fatalf("Verify accepted an envelope that does not parse: %v", err)
		}
		if env.PayloadType != manifest.PayloadType {
			t.Fatalf("Verify accepted payload type %q", env.PayloadType)
		}
		msg := signing.PAE(env.PayloadType, env.Payload)
		signed := false
		for _, s := range env.Signatures {
			if s.KeyID == key.Public.ID && key.Public.Verify(msg, s.Sig) {
				signed = true
			}
		}
		if !signed {
			t.Fatalf("Verify accepted an envelope without a valid signature by %s", key.Public.ID)
		}
		m, err := manifest.Decode(env.Payload)
		if err != nil || !manifestsEqual(m, v.Manifest) {
			t.Fatalf("Verify returned a manifest other than the signed payload's (%v)", err)
		}
		if len(v.SignedBy) != 1 || v.SignedBy[0] != key.Public.ID {
			t.Fatalf("SignedBy = %v, want [%s]", v.SignedBy, key.Public.ID)
		}
	})
}
