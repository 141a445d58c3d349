package manifest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/internal/strictjson"
	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/signing"
	"github.com/fleetcast/fleetcast/signing/signingtest"
)

var updateVectors = flag.Bool("update-vectors", false, "rewrite ../testdata/vectors")

const vectorsDir = "../testdata/vectors"

// keysVectorDir holds the key-file vector; its salt is random, so it is only
// written when missing, and the manifest vector walk skips it.
const keysVectorDir = "keys"

// vectorHeader is a vector's vector.json: what must happen when the vector's
// files are verified at time Now.
type vectorHeader struct {
	Description string    `json:"description"`
	Expect      string    `json:"expect"`
	Now         time.Time `json:"now"`
	Artifact    string    `json:"artifact,omitempty"`
}

// outcomes maps each expect value to its sentinel error. A verification
// error's outcome is the first entry it matches, in this order: the more
// specific causes come before ErrThreshold, which every signature failure
// matches, so that "threshold" means only that too few keys signed.
var outcomes = []struct {
	name string
	err  error
}{
	{"too_large", signing.ErrTooLarge},
	{"payload_type", signing.ErrPayloadType},
	{"malformed", signing.ErrMalformed},
	{"rotation", signing.ErrRotation},
	{"root_expired", signing.ErrRootExpired},
	{"expired", manifest.ErrExpired},
	{"invalid", manifest.ErrInvalid},
	{"mismatch", manifest.ErrMismatch},
	{"bad_signature", signing.ErrBadSignature},
	{"unknown_key", signing.ErrUnknownKey},
	{"threshold", signing.ErrThreshold},
}

func knownOutcome(name string) bool {
	for _, o := range outcomes {
		if o.name == name {
			return true
		}
	}
	return name == "ok"
}

func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	for _, o := range outcomes {
		if errors.Is(err, o.err) {
			return o.name
		}
	}
	return "unexpected error"
}

// vector is one generated vector directory: its header and its files by
// slash-separated relative path.
type vector struct {
	name   string
	header vectorHeader
	files  map[string][]byte
}

// TestVectors checks every vector under ../testdata/vectors against the
// library, and that the committed vectors are exactly what the generator
// below writes. With -update-vectors it rewrites them first.
func TestVectors(t *testing.T) {
	if *updateVectors {
		writeVectors(t, vectorsDir)
		writeKeyVector(t, filepath.Join(vectorsDir, keysVectorDir))
	}
	entries, err := os.ReadDir(vectorsDir)
	if err != nil {
		t.Fatalf("%v (generate with: go test ./manifest -run TestVectors -update-vectors)", err)
	}
	n := 0
	for _, e := range entries {
		if !e.IsDir() || e.Name() == keysVectorDir {
			continue
		}
		n++
		t.Run(e.Name(), func(t *testing.T) {
			dir := filepath.Join(vectorsDir, e.Name())
			h := readVectorHeader(t, dir)
			err := runVector(dir, h)
			t.Logf("%s: %v", h.Expect, err)
			if got := outcome(err); got != h.Expect {
				t.Errorf("%s: got %s (%v), want %s", h.Description, got, err, h.Expect)
			}
		})
	}
	if n == 0 {
		t.Fatalf("no vectors in %s", vectorsDir)
	}
	t.Run("up to date", func(t *testing.T) {
		fresh := t.TempDir()
		writeVectors(t, fresh)
		compareTrees(t, fresh, vectorsDir)
	})
}

// runVector verifies a vector's files the way `fleetcast verify --root
// root.json --roots roots [--artifact FILE] manifest.json` does, at h.Now.
func runVector(dir string, h vectorHeader) error {
	data, err := os.ReadFile(filepath.Join(dir, "root.json"))
	if err != nil {
		return err
	}
	root, _, err := signing.ParseRoot(data)
	if err != nil {
		return err
	}
	root, err = signing.FollowChain(context.Background(), root, func(_ context.Context, v uint64) ([]byte, error) {
		return os.ReadFile(filepath.Join(dir, filepath.FromSlash(manifest.RootPath(v))))
	})
	if err != nil {
		return err
	}
	data, err = os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return err
	}
	v, err := manifest.Verify(data, root, h.Now)
	if err != nil || h.Artifact == "" {
		return err
	}
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(h.Artifact)))
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = manifest.VerifyArtifact(f, v.Manifest)
	return err
}

func readVectorHeader(t *testing.T, dir string) vectorHeader {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "vector.json"))
	if err != nil {
		t.Fatal(err)
	}
	var h vectorHeader
	if err := strictjson.Unmarshal(data, &h); err != nil {
		t.Fatalf("%s/vector.json: %v", dir, err)
	}
	if h.Description == "" || h.Now.IsZero() || !knownOutcome(h.Expect) {
		t.Fatalf("%s/vector.json: want a description, a now time and a known expect, got %+v", dir, h)
	}
	return h
}

// writeVectors (re)writes every generated vector under dir, removing
// vector directories the generator no longer makes.
func writeVectors(t *testing.T, dir string) {
	t.Helper()
	vs := buildVectors(t)
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() && e.Name() != keysVectorDir {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, v := range vs {
		h, err := json.MarshalIndent(v.header, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		v.files["vector.json"] = append(h, '\n')
		for name, data := range v.files {
			p := filepath.Join(dir, v.name, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// compareTrees fails unless the vector directories under got and want hold
// the same files with the same bytes (the key vector and README.md aside).
func compareTrees(t *testing.T, got, want string) {
	t.Helper()
	list := func(root string) map[string][]byte {
		files := map[string][]byte{}
		err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			if d.IsDir() && rel == keysVectorDir {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.Contains(filepath.ToSlash(rel), "/") {
				return nil // top-level files such as README.md
			}
			data, err := os.ReadFile(p)
			files[filepath.ToSlash(rel)] = data
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return files
	}
	g, w := list(got), list(want)
	for name, data := range g {
		if wd, ok := w[name]; !ok {
			t.Errorf("%s is missing from %s", name, want)
		} else if !bytes.Equal(data, wd) {
			t.Errorf("%s differs from what the generator writes", name)
		}
	}
	for name := range w {
		if _, ok := g[name]; !ok {
			t.Errorf("%s/%s is not written by the generator", want, name)
		}
	}
	if t.Failed() {
		t.Log("regenerate with: go test ./manifest -run TestVectors -update-vectors")
	}
}

// buildVectors makes every vector from fixed seeds and fixed times. Ed25519
// signatures are deterministic, so the output is the same on every run.
//
// Keys (seed byte n repeated 32 times): 1, 2, 3 sign root version 1; 4 is the
// key root version 2 rotates to; 9 is trusted by no root.
func buildVectors(t *testing.T) []vector {
	k1, k2, k3, k4, stranger := signingtest.Key(t, 1), signingtest.Key(t, 2), signingtest.Key(t, 3), signingtest.Key(t, 4), signingtest.Key(t, 9)
	rootExpired := time.Date(2026, time.March, 1, 0, 0, 0, 0, time.UTC)

	root1of1 := signingtest.SignRoot(t, signingtest.Root(1, 1, testExpires, k1), k1)
	root2of3 := signingtest.SignRoot(t, signingtest.Root(1, 2, testExpires, k1, k2, k3), k1, k2, k3)
	root2 := signingtest.Root(2, 1, testExpires, k4)

	artifact := testArtifact(6 << 10)
	withArtifact := testManifest(t, artifact, 2<<10, 3<<10, 1<<10)
	small := testManifest(t, artifact[:2<<10], 2<<10)
	sign := func(m *manifest.Manifest, ks ...*signing.PrivateKey) []byte {
		return signManifest(t, m, ks...).Marshal()
	}

	v := func(name, expect, desc string, files map[string][]byte) vector {
		return vector{name: name, header: vectorHeader{Description: desc, Expect: expect, Now: testNow}, files: files}
	}
	withArtifactFile := func(vec vector, data []byte) vector {
		vec.header.Artifact = "artifact.bin"
		vec.files["artifact.bin"] = data
		return vec
	}

	tamperedPayload := signManifest(t, small, k1)
	tamperedPayload.Payload = bytes.Replace(tamperedPayload.Payload, []byte(`"version": "1.0.0"`), []byte(`"version": "1.0.1"`), 1)
	tamperedSig := signManifest(t, small, k1)
	tamperedSig.Signatures[0].Sig[10] ^= 0x01
	duplicate := signManifest(t, small, k1)
	duplicate.Signatures = append(duplicate.Signatures, duplicate.Signatures[0])
	expired := *small
	expired.Expires = time.Date(2026, time.February, 1, 0, 0, 0, 0, time.UTC)
	inToto := signPayload("application/vnd.in-toto+json", mustEncode(t, small), k1).Marshal()
	good := sign(small, k1)
	badB64 := envelopeJSON(t, manifest.PayloadType, "bm90IGJhc2U2NCE=!", signManifest(t, small, k1).Signatures)
	skip := *root2
	skip.Version = 3
	unsignedRoot, err := signingtest.Root(1, 1, testExpires, k1).Envelope()
	if err != nil {
		t.Fatal(err)
	}
	tooMany := signManifest(t, small, k1)
	for len(tooMany.Signatures) <= signing.MaxSignatures {
		tooMany.Signatures = append(tooMany.Signatures, tooMany.Signatures[0])
	}
	badSizes := *small
	badSizes.Artifact.Size++ // chunk sizes now add up to one byte less
	flipped := bytes.Clone(artifact)
	flipped[3<<10] ^= 0x80

	return []vector{
		v("ok-1of1", "ok", "root 1 of 1 keys, manifest signed by that key", map[string][]byte{
			"root.json": root1of1, "manifest.json": sign(small, k1)}),
		v("ok-2of3", "ok", "root 2 of 3 keys, manifest signed by keys 3 and 1", map[string][]byte{
			"root.json": root2of3, "manifest.json": sign(small, k3, k1)}),
		v("ok-rotated", "ok", "pinned root version 1 (key 1) rotates through roots/2.root.json (key 4, signed by keys 1 and 4); manifest signed by key 4 only", map[string][]byte{
			"root.json": root1of1, "roots/2.root.json": signingtest.SignRoot(t, root2, k1, k4), "manifest.json": sign(small, k4)}),
		withArtifactFile(v("ok-artifact", "ok", "manifest of a 6 KiB artifact in 3 chunks; artifact.bin matches", map[string][]byte{
			"root.json": root1of1, "manifest.json": sign(withArtifact, k1)}), artifact),
		v("tampered-payload", "bad_signature", "one byte of the payload changed after signing (version 1.0.0 to 1.0.1), envelope re-encoded", map[string][]byte{
			"root.json": root1of1, "manifest.json": tamperedPayload.Marshal()}),
		v("tampered-signature", "bad_signature", "one bit of the signature flipped", map[string][]byte{
			"root.json": root1of1, "manifest.json": tamperedSig.Marshal()}),
		v("unknown-key", "unknown_key", "manifest signed only by a key the root does not list", map[string][]byte{
			"root.json": root1of1, "manifest.json": sign(small, stranger)}),
		v("below-threshold", "threshold", "root 2 of 3 keys, manifest signed by one of them", map[string][]byte{
			"root.json": root2of3, "manifest.json": sign(small, k2)}),
		v("duplicate-key", "threshold", "root 2 of 3 keys, manifest carries the same key's valid signature twice: it counts once", map[string][]byte{
			"root.json": root2of3, "manifest.json": duplicate.Marshal()}),
		v("expired-manifest", "expired", "manifest expired 2026-02-01, checked 2026-06-01", map[string][]byte{
			"root.json": root1of1, "manifest.json": sign(&expired, k1)}),
		v("expired-root", "root_expired", "root expired 2026-03-01, checked 2026-06-01; the manifest itself is valid", map[string][]byte{
			"root.json": signingtest.SignRoot(t, signingtest.Root(1, 1, rootExpired, k1), k1), "manifest.json": good}),
		v("unknown-payload-type", "payload_type", `properly signed, but payloadType is "application/vnd.in-toto+json"`, map[string][]byte{
			"root.json": root1of1, "manifest.json": inToto}),
		v("too-many-signatures", "too_large", "the envelope carries 33 signatures (the limit is 32), all copies of key 1's valid one", map[string][]byte{
			"root.json": root1of1, "manifest.json": tooMany.Marshal()}),
		v("truncated-envelope", "malformed", "manifest.json cut in half", map[string][]byte{
			"root.json": root1of1, "manifest.json": good[:len(good)/2]}),
		v("bad-base64-payload", "malformed", "the payload field is not base64", map[string][]byte{
			"root.json": root1of1, "manifest.json": badB64}),
		v("trailing-data", "malformed", `a valid envelope followed by "{}"`, map[string][]byte{
			"root.json": root1of1, "manifest.json": append(bytes.Clone(good), "{}\n"...)}),
		v("rotation-not-signed-by-old", "rotation", "roots/2.root.json is signed only by its own new key 4, not by root version 1's key", map[string][]byte{
			"root.json": root1of1, "roots/2.root.json": signingtest.SignRoot(t, root2, k4), "manifest.json": sign(small, k4)}),
		v("rotation-skips-version", "rotation", "roots/2.root.json holds root version 3 (signed by keys 1 and 4): versions must go up by one", map[string][]byte{
			"root.json": root1of1, "roots/2.root.json": signingtest.SignRoot(t, &skip, k1, k4), "manifest.json": sign(small, k4)}),
		v("root-not-self-signed", "threshold", "the pinned root.json carries no signatures", map[string][]byte{
			"root.json": unsignedRoot.Marshal(), "manifest.json": good}),
		v("invalid-chunk-sizes", "invalid", "properly signed, but the chunk sizes add up to one byte less than artifact.size", map[string][]byte{
			"root.json": root1of1, "manifest.json": signPayload(manifest.PayloadType, mustMarshalUnchecked(t, &badSizes), k1).Marshal()}),
		withArtifactFile(v("artifact-mismatch", "mismatch", "valid manifest; artifact.bin has one bit flipped in chunk 1", map[string][]byte{
			"root.json": root1of1, "manifest.json": sign(withArtifact, k1)}), flipped),
		withArtifactFile(v("artifact-truncated", "mismatch", "valid manifest; artifact.bin ends 1 KiB early, inside chunk 2", map[string][]byte{
			"root.json": root1of1, "manifest.json": sign(withArtifact, k1)}), artifact[:5<<10]),
	}
}

// envelopeJSON encodes an envelope with a payload field given verbatim.
func envelopeJSON(t *testing.T, payloadType, payload string, sigs []signing.Signature) []byte {
	t.Helper()
	type sigJSON struct {
		KeyID signing.KeyID `json:"keyid"`
		Sig   []byte        `json:"sig"`
	}
	j := struct {
		PayloadType string    `json:"payloadType"`
		Payload     string    `json:"payload"`
		Signatures  []sigJSON `json:"signatures"`
	}{PayloadType: payloadType, Payload: payload}
	for _, s := range sigs {
		j.Signatures = append(j.Signatures, sigJSON{KeyID: s.KeyID, Sig: s.Sig})
	}
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

const (
	keyVectorPassphrase      = "correct horse battery staple"
	keyVectorWrongPassphrase = "Tr0ub4dor&3"
)

type keyVectorHeader struct {
	Description     string `json:"description"`
	Expect          string `json:"expect"`
	Passphrase      string `json:"passphrase"`
	WrongPassphrase string `json:"wrong_passphrase"`
}

// writeKeyVector writes the encrypted key-file vector unless it exists: its
// scrypt salt and nonce are random, so rewriting it would change it each time.
func writeKeyVector(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "encrypted.key")); err == nil {
		return
	}
	k := signingtest.Key(t, 7)
	priv, err := signing.MarshalPrivateKey(k, []byte(keyVectorPassphrase))
	if err != nil {
		t.Fatal(err)
	}
	var h bytes.Buffer
	enc := json.NewEncoder(&h)
	enc.SetEscapeHTML(false) // keep "&" in the wrong passphrase readable
	enc.SetIndent("", "  ")
	err = enc.Encode(keyVectorHeader{
		Description:     fmt.Sprintf("private key file of key %s encrypted with the passphrase; the wrong passphrase must fail", k.Public.ID),
		Expect:          "wrong_passphrase",
		Passphrase:      keyVectorPassphrase,
		WrongPassphrase: keyVectorWrongPassphrase,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"encrypted.key": priv,
		"encrypted.pub": signing.MarshalPublicKey(k.Public),
		"vector.json":   h.Bytes(),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestKeyVector(t *testing.T) {
	dir := filepath.Join(vectorsDir, keysVectorDir)
	if *updateVectors {
		writeKeyVector(t, dir)
	}
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%v (generate with: go test ./manifest -run TestVectors -update-vectors)", err)
		}
		return data
	}
	var h keyVectorHeader
	if err := strictjson.Unmarshal(read("vector.json"), &h); err != nil {
		t.Fatalf("keys/vector.json: %v", err)
	}
	if h.Expect != "wrong_passphrase" {
		t.Fatalf("keys/vector.json: expect %q, want wrong_passphrase", h.Expect)
	}
	keyFile := read("encrypted.key")
	pub, err := signing.ParsePublicKey(read("encrypted.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if !signing.IsEncryptedPrivateKey(keyFile) {
		t.Errorf("encrypted.key is not encrypted")
	}
	k, err := signing.ParsePrivateKey(keyFile, []byte(h.Passphrase))
	if err != nil {
		t.Fatalf("right passphrase: %v", err)
	}
	if k.Public.ID != pub.ID || !k.Public.Key.Equal(pub.Key) {
		t.Errorf("decrypted key %s does not match encrypted.pub %s", k.Public.ID, pub.ID)
	}
	if msg := []byte("fleetcast"); !pub.Verify(msg, k.Sign(msg)) {
		t.Errorf("decrypted key's signature does not verify with encrypted.pub")
	}
	if _, err := signing.ParsePrivateKey(keyFile, []byte(h.WrongPassphrase)); !errors.Is(err, signing.ErrWrongPassphrase) {
		t.Errorf("wrong passphrase: got %v, want %v", err, signing.ErrWrongPassphrase)
	}
	if _, err := signing.ParsePrivateKey(keyFile, nil); !errors.Is(err, signing.ErrPassphraseRequired) {
		t.Errorf("no passphrase: got %v, want %v", err, signing.ErrPassphraseRequired)
	}
}
