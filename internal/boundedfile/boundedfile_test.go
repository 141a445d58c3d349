package boundedfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("12345"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		path  string
		limit int64
		want  string // content, or a part of the error
		is    error
	}{
		{"within the limit", file, 5, "12345", nil},
		{"over the limit", file, 4, "larger than the limit of 4 bytes", ErrTooLarge},
		{"a directory", dir, 10, "is a directory, not a regular file", ErrNotRegular},
		{"missing", filepath.Join(dir, "none"), 10, "no such file", os.ErrNotExist},
	}
	if fifo := mkfifo(t, filepath.Join(dir, "fifo")); fifo != "" {
		// Nobody writes to it: a blocking open would hang the test.
		tests = append(tests, struct {
			name  string
			path  string
			limit int64
			want  string
			is    error
		}{"a named pipe", fifo, 10, "is a named pipe (FIFO), not a regular file", ErrNotRegular})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Read(tc.path, tc.limit)
			if tc.is == nil {
				if err != nil || string(b) != tc.want {
					t.Fatalf("Read = %q, %v; want %q", b, err, tc.want)
				}
				return
			}
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Read: %v; want an error wrapping %v saying %q", err, tc.is, tc.want)
			}
		})
	}
}
