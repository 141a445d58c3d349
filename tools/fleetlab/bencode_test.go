//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestInfoHashMktorrent checks infoHash against aria2c -S on .torrent files
// made by mktorrent: the one in testdata (its "Info Hash" recorded from
// aria2 1.36.0) and, when both tools are installed, a fresh one.
func TestInfoHashMktorrent(t *testing.T) {
	tests := []struct {
		name    string
		torrent func(t *testing.T) string
		want    func(t *testing.T, torrent string) string
	}{
		{"testdata", func(*testing.T) string { return filepath.Join("testdata", "mktorrent-1.1.torrent") },
			func(*testing.T, string) string { return "dc4a414595936d8bd9c7e0420b22358372c15324" }},
		{"fresh", freshTorrent, aria2InfoHash},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.torrent(t)
			b, err := readBounded(path, maxTorrentBytes)
			if err != nil {
				t.Fatal(err)
			}
			got, err := infoHash(b)
			if err != nil {
				t.Fatalf("infoHash(%s): %v", path, err)
			}
			if want := tc.want(t, path); hex.EncodeToString(got[:]) != want {
				t.Errorf("infoHash(%s) = %x, aria2c says %s", path, got, want)
			}
		})
	}
}

// freshTorrent makes a .torrent of a 3 MiB + 5 byte file with mktorrent
// the way runTorrent does, or skips without mktorrent and aria2c.
func freshTorrent(t *testing.T) string {
	for _, tool := range []string{"mktorrent", "aria2c"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian packages mktorrent, aria2): %v", tool, err)
		}
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "release.bin")
	if err := os.WriteFile(file, bytes.Repeat([]byte("fleetcast"), (3<<20+5)/9), 0o644); err != nil {
		t.Fatal(err)
	}
	torrent := filepath.Join(dir, "release.torrent")
	out, err := exec.Command("mktorrent", "-l", torrentPieceLog, "-a", "http://198.18.0.1:6969/announce", "-o", torrent, file).CombinedOutput()
	if err != nil {
		t.Fatalf("mktorrent: %v: %s", err, out)
	}
	return torrent
}

// aria2InfoHash is the "Info Hash" aria2c -S prints for a .torrent.
func aria2InfoHash(t *testing.T, torrent string) string {
	out, err := exec.Command("aria2c", "--no-conf=true", "-S", torrent).Output()
	if err != nil {
		t.Fatalf("aria2c -S %s: %v", torrent, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if h, ok := strings.CutPrefix(sc.Text(), "Info Hash: "); ok {
			return strings.TrimSpace(h)
		}
	}
	t.Fatalf("aria2c -S %s printed no Info Hash:\n%s", torrent, out)
	return ""
}

func TestInfoHashRejects(t *testing.T) {
	tests := []struct {
		name, in  string
		malformed bool // the error wraps errBencode
	}{
		{"empty", "", true},
		{"not a dict", "li1ee", true},
		{"no info", "d8:announce3:urle", false},
		{"info is a string", "d4:info3:abce", false},
		{"truncated", "d4:infod6:lengthi1e", true},
		{"trailing data", "d4:infodee" + "x", true},
		{"string past the end", "d4:info99999999:abce", true},
		{"negative string length", "d4:info-1:ae", true},
		{"overlong integer", "d4:infod1:ai" + strings.Repeat("9", 40) + "eee", true},
		{"integer overflow", "d1:ai99999999999999999999ee", true},
		{"leading zero", "d1:ai01e4:infodee", true},
		{"negative zero", "d1:ai-0e4:infodee", true},
		{"plus sign", "d1:ai+1e4:infodee", true},
		{"empty integer", "d1:aie4:infodee", true},
		{"duplicate key", "d4:infode4:infodee", true},
		{"non-string key", "di1e4:infodee", true},
		{"deep nesting", "d4:info" + strings.Repeat("l", 10000) + strings.Repeat("e", 10000) + "e", true},
		{"bad byte", "d4:infox", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := infoHash([]byte(tc.in))
			if err == nil {
				t.Fatalf("infoHash(%.40q) succeeded", tc.in)
			}
			if errors.Is(err, errBencode) != tc.malformed {
				t.Errorf("infoHash(%.40q) = %v; wraps errBencode: %v, want %v", tc.in, err, !tc.malformed, tc.malformed)
			}
		})
	}
}

func TestBdecode(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{"i0e", int64(0)},
		{"i-42e", int64(-42)},
		{"i9223372036854775807e", int64(9223372036854775807)},
		{"0:", ""},
		{"4:spam", "spam"},
		{"le", []any(nil)},
		{"l4:spami7ee", []any{"spam", int64(7)}},
		{"d5:filesd3:abcd8:completei1eeee", map[string]any{"files": map[string]any{"abc": map[string]any{"complete": int64(1)}}}},
	}
	for _, tc := range tests {
		got, err := bdecode([]byte(tc.in))
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("bdecode(%q) = %#v, %v; want %#v", tc.in, got, err, tc.want)
		}
	}
}

// FuzzInfoHash checks that no input panics and that a hash is only given
// for a dictionary with an info dictionary.
func FuzzInfoHash(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "mktorrent-1.1.torrent")); err == nil {
		f.Add(b)
	}
	f.Add([]byte("d4:infod6:lengthi1eee"))
	f.Add([]byte("d4:infoli1eee"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := infoHash(b); err != nil {
			return
		}
		v, err := bdecode(b)
		if err != nil {
			t.Fatalf("infoHash accepted what bdecode rejects: %v", err)
		}
		if _, ok := v.(map[string]any)["info"].(map[string]any); !ok {
			t.Fatalf("infoHash accepted a torrent without an info dictionary")
		}
	})
}
