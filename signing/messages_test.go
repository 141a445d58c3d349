package signing

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestKeyIDMessages: a key id read from a file is shown quoted, so that a
// trailing space or a control character is visible, and cut when long.
func TestKeyIDMessages(t *testing.T) {
	k := testKey(t, 1)
	id := string(k.Public.ID)
	long := id + strings.Repeat("f", 300)
	payload, err := testRoot(1, 1, k).Payload()
	if err != nil {
		t.Fatal(err)
	}
	rootWithID := func(s string) []byte {
		return bytes.Replace(payload, []byte(`"`+id+`"`), []byte(`"`+s+`"`), 1)
	}
	for _, tc := range []struct {
		name string
		data func() error
		want string
	}{
		{"root key id with a trailing space", func() error { _, err := DecodeRootPayload(rootWithID(id + " ")); return err },
			`root: key "` + id + ` ": malformed input: the id does not match the key, whose id is ` + id},
		{"root key id with a tab", func() error { _, err := DecodeRootPayload(rootWithID(id + `\t`)); return err },
			`root: key "` + id + `\t": malformed input`},
		{"long root key id", func() error { _, err := DecodeRootPayload(rootWithID(long)); return err },
			`root: key "` + long[:64] + `"...: malformed input`},
		{"public key file", func() error {
			_, err := ParsePublicKey(bytes.Replace(MarshalPublicKey(k.Public), []byte(`"`+id+`"`), []byte(`"`+id+` "`), 1))
			return err
		}, `public key file: key "` + id + ` ": malformed input`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.data()
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}
