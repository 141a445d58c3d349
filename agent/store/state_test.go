package store

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/manifest"
)

// TestStateFileCompatible: the state file of an older agent loads; one
// without a pending retry is written as an older agent writes it (so that
// it reads it); the retry fields survive a save and a load.
func TestStateFileCompatible(t *testing.T) {
	old := `{
  "trusted_sequence": 7,
  "installed_sequence": 6,
  "installed_version": "1.0",
  "failed_sequence": 7,
  "failed_reason": "health check failed",
  "etag": "\"abc\"",
  "last_modified": ""
}
`
	st, err := DecodeState([]byte(old))
	if err != nil {
		t.Fatalf("state of an older agent: %v", err)
	}
	want := State{Trusted: 7, Installed: 6, InstalledVersion: "1.0", Failed: 7, FailedReason: "health check failed", ETag: `"abc"`}
	if st != want {
		t.Fatalf("decoded %+v; want %+v", st, want)
	}
	b, err := EncodeState(st)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != old {
		t.Errorf("encoded without a retry:\n%s\nwant it as an older agent writes it:\n%s", b, old)
	}

	st.NoSpace(8, "write: no space", time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), 5*time.Minute)
	b, err = EncodeState(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"retry_sequence": 8`, `"retry_after": "2026-03-01T12:05:00Z"`, `"retry_count": 1`, `"retry_reason": "write: no space"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("encoded %s\nwant it to contain %s", b, want)
		}
	}
	back, err := DecodeState(b)
	if err != nil || !back.RetryAfter.Equal(st.RetryAfter) {
		t.Fatalf("decoded %+v, %v; want %+v", back, err, st)
	}
	back.RetryAfter = st.RetryAfter
	if back != st {
		t.Errorf("decoded %+v; want %+v", back, st)
	}
}

// TestStateFileRefused: what the retry fields may not hold.
func TestStateFileRefused(t *testing.T) {
	for _, tc := range []struct{ name, doc string }{
		{"retry_after null", `{"retry_after":null}`},
		{"retry_after not RFC 3339", `{"retry_after":"tomorrow"}`},
		{"retry_after a number", `{"retry_after":1767225600}`},
		{"retry_count a string", `{"retry_count":"1"}`},
		{"retry_sequence negative", `{"retry_sequence":-1}`},
		{"retry_reason twice", `{"retry_reason":"a","retry_reason":"b"}`},
		{"retry key in another case", `{"Retry_Count":1}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if st, err := DecodeState([]byte(tc.doc)); err == nil {
				t.Errorf("decoded %s as %+v; want an error", tc.doc, st)
			}
		})
	}
}

// TestStateFileBounded: whatever the origin and the installers say, the
// state file saveState writes stays within maxStateSize (JSON escapes a
// byte in up to 6) and loads again.
func TestStateFileBounded(t *testing.T) {
	for _, fill := range []string{"<", "\x01", "\xff", "\u2028", "é"} {
		long := strings.Repeat(fill, MaxStateSize)
		validator := strings.Repeat(fill, MaxValidator/len(fill))
		st := State{Trusted: 1<<64 - 1, Installed: 1<<64 - 1, InstalledVersion: strings.Repeat("v", 128), Failed: 1<<64 - 1,
			FailedReason: long, ETag: validator, LastModified: validator,
			RetrySequence: 1<<64 - 1, RetryAfter: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("", -23*3600-59*60)),
			RetryCount: -1 << 63, RetryReason: long}
		dir := t.TempDir()
		if err := SaveState(dir, manifest.ChannelID{Product: "app", Channel: "stable"}, st); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(StatePath(dir, manifest.ChannelID{Product: "app", Channel: "stable"}))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > MaxStateSize {
			t.Errorf("fill %q: state file of %d bytes; limit %d", fill, fi.Size(), MaxStateSize)
		}
		got, err := LoadState(dir, manifest.ChannelID{Product: "app", Channel: "stable"})
		if err != nil {
			t.Fatalf("fill %q: %v", fill, err)
		}
		if len(got.FailedReason) > MaxFailedReason || len(got.RetryReason) > MaxRetryReason ||
			!strings.HasSuffix(got.RetryReason, "...") || got.RetryCount != st.RetryCount {
			t.Errorf("fill %q: loaded failed_reason of %d bytes, retry_reason of %d, retry_count %d",
				fill, len(got.FailedReason), len(got.RetryReason), got.RetryCount)
		}
	}
}

// FuzzStateFile: a state file that decodes is saved as it was loaded
// (what saveState cuts, cut once): loading and saving it again changes
// nothing.
func FuzzStateFile(f *testing.F) {
	for _, s := range []string{
		`{}`,
		`{"trusted_sequence":7,"installed_sequence":6,"installed_version":"1.0","failed_sequence":7,"failed_reason":"x","etag":"\"e\"","last_modified":""}`,
		`{"trusted_sequence":3,"retry_sequence":3,"retry_after":"2026-03-01T12:05:00Z","retry_count":2,"retry_reason":"no space"}`,
		`{"retry_after":"2026-03-01T12:05:00.123456789+02:00"}`,
		`{"retry_after":"0001-01-01T00:00:00Z","retry_count":0}`,
		`{"retry_count":-5,"retry_reason":"` + strings.Repeat("é", MaxRetryReason) + `"}`,
		`{"retry_after":null}`,
		`{"retry_sequence":1,"unknown":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > MaxStateSize {
			return
		}
		st, err := DecodeState(data)
		if err != nil {
			return
		}
		b, err := EncodeState(st)
		if err != nil {
			t.Fatalf("a state that loads does not save: %v", err)
		}
		again, err := DecodeState(b)
		if err != nil {
			t.Fatalf("saved state does not load: %v\n%s", err, b)
		}
		if !again.RetryAfter.Equal(st.RetryAfter) {
			t.Fatalf("retry_after %v saved and loaded as %v", st.RetryAfter, again.RetryAfter)
		}
		b2, err := EncodeState(again)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("saved again differently (%v):\n%s\nthen\n%s", err, b, b2)
		}
	})
}
