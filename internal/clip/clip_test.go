package clip

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	tests := []struct {
		s    string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"eleven chars", 10, "eleven ..."},
		{"ééééé", 6, "é..."}, // é is two bytes: cut on a rune boundary
		{"a\xffb", 10, "ab"}, // invalid UTF-8 dropped
		{strings.Repeat("x", 100), 3, "..."},
	}
	for _, tc := range tests {
		got := String(tc.s, tc.n)
		if got != tc.want {
			t.Errorf("String(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
		if len(got) > max(tc.n, len(marker)) || !utf8.ValidString(got) {
			t.Errorf("String(%q, %d) = %q: too long or invalid", tc.s, tc.n, got)
		}
		if again := String(got, tc.n); again != got {
			t.Errorf("cutting %q again gave %q", got, again)
		}
	}
}
