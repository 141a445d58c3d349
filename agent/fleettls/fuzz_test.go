package fleettls

import (
	"bytes"
	"regexp"
	"testing"
)

var hexID = regexp.MustCompile(`^[0-9a-f]{16}$`)

func FuzzFromSecret(f *testing.F) {
	f.Add(secretA)
	f.Add([]byte("short"))
	f.Add(append([]byte("\u00a0"), secretA...)) // not trimmed: ASCII whitespace only
	f.Fuzz(func(t *testing.T, secret []byte) {
		fl, err := FromSecret(secret)
		n := len(bytes.Trim(secret, Whitespace))
		if (err == nil) != (n >= MinSecretSize && n <= MaxSecretSize) {
			t.Fatalf("%d bytes after trimming: err %v", n, err)
		}
		if err != nil {
			return
		}
		again, err := FromSecret(secret)
		if err != nil || again.ID() != fl.ID() || !bytes.Equal(again.cert.Certificate[0], fl.cert.Certificate[0]) {
			t.Fatalf("FromSecret not stable: %s then %v (%v)", fl.ID(), again, err)
		}
		if !hexID.MatchString(fl.ID()) || !fl.Closed() {
			t.Fatalf("fleet id %q closed %v", fl.ID(), fl.Closed())
		}
	})
}
