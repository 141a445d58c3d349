package benchrun

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteArtifact(t *testing.T) {
	src := bytes.Repeat([]byte("0123456789"), 1<<20) // more than one buffer
	tests := []struct {
		name    string
		size    int64
		wantErr bool
	}{
		{"empty", 0, false},
		{"part", 5<<20 + 3, false},
		{"all", int64(len(src)), false},
		{"more than the source", int64(len(src)) + 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "artifact.bin")
			err := WriteArtifact(path, tt.size, bytes.NewReader(src))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, src[:tt.size]) {
				t.Errorf("wrote %d bytes, want the first %d of the source", len(got), tt.size)
			}
		})
	}
}
