//go:build unix

package benchrun

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

func TestTimed(t *testing.T) {
	tests := []struct {
		name    string
		script  string
		wantOut string
		wantErr bool
	}{
		{"ok", "echo out; echo err >&2", "out\nerr\n", false},
		{"fails", "echo why >&2; exit 3", "why\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, out, err := Timed("sh", "-c", tt.script)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tt.wantErr)
			}
			if string(out) != tt.wantOut {
				t.Errorf("output %q, want %q", out, tt.wantOut)
			}
			if m.Wall <= 0 {
				t.Errorf("wall time %v, want > 0", m.Wall)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tt.wantOut) {
					t.Errorf("error %q does not hold the output %q", err, tt.wantOut)
				}
				return
			}
			if runtime.GOOS == "linux" && m.MaxRSS <= 0 {
				t.Errorf("peak RSS %d on Linux, want > 0", m.MaxRSS)
			}
		})
	}
}

// TestTimedKeepsFirstOutput checks that Timed keeps the start of a long
// output and drops the rest.
func TestTimedKeepsFirstOutput(t *testing.T) {
	_, out, err := Timed("sh", "-c", "echo first; head -c 3000000 /dev/zero")
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != maxOutput || !bytes.HasPrefix(out, []byte("first\n")) {
		t.Errorf("kept %d bytes starting %q, want the first %d", len(out), out[:min(len(out), 6)], maxOutput)
	}
}
