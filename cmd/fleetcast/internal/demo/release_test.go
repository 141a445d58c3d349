package demo

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSameFile compares files across the comparison's block boundary.
func TestSameFile(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("fleetcast"), compareBlock/4) // over two blocks
	changed := bytes.Clone(data)
	changed[compareBlock+5] ^= 1
	files := map[string][]byte{"a": data, "same": data, "changed": changed, "short": data[:compareBlock+3], "empty": nil}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		b, want string // want: "" for the same bytes, else part of the error
	}{
		{"same", ""},
		{"changed", "differs within bytes 1048576 to 2097152"},
		{"short", "differs within bytes 1048576 to 2097152"},
		{"empty", "differs within bytes 0 to 1048576"},
	} {
		err := sameFile(filepath.Join(dir, "a"), filepath.Join(dir, tc.b))
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("sameFile(a, %s) = %v, want %q", tc.b, err, tc.want)
		}
	}
	if err := sameFile(filepath.Join(dir, "empty"), filepath.Join(dir, "empty")); err != nil {
		t.Errorf("sameFile(empty, empty) = %v", err)
	}
	if err := sameFile(filepath.Join(dir, "a"), filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("sameFile(a, missing) = %v, want fs.ErrNotExist", err)
	}
}
