// Package signingtest makes keys and roots for tests: deterministic keys
// and roots signed by the keys a test names. Test code only. (Package
// signing's own tests cannot import it, and keep their copy.)
package signingtest

import (
	"bytes"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/signing"
)

// Key returns a deterministic key: seed byte n repeated 32 times.
func Key(t testing.TB, n byte) *signing.PrivateKey {
	t.Helper()
	k, err := signing.NewKeyFromSeed(bytes.Repeat([]byte{n}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Root is an unsigned root of version, threshold and the keys' public
// halves, expiring at expires.
func Root(version uint64, threshold int, expires time.Time, keys ...*signing.PrivateKey) *signing.Root {
	r := &signing.Root{Version: version, Expires: expires, Threshold: threshold}
	for _, k := range keys {
		r.Keys = append(r.Keys, k.Public)
	}
	return r
}

// SignRoot returns r's envelope signed by signers, encoded.
func SignRoot(t testing.TB, r *signing.Root, signers ...*signing.PrivateKey) []byte {
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
