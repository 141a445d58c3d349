package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// FuzzParseConfig checks that Parse never panics, that what it accepts
// validates, and that encoding an accepted Config and parsing it again gives
// the same Config. The seeds are in testdata/fuzz/FuzzParseConfig, among them
// testdata/agent.toml.
func FuzzParseConfig(f *testing.F) {
	if runtime.GOOS == "windows" {
		f.Skip("the seed configs use Unix absolute paths")
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config: ") {
				t.Fatalf("error without config: prefix: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted what Validate refuses: %v", err)
		}
		var buf bytes.Buffer
		if err := toml.NewEncoder(&buf).Encode(c); err != nil {
			t.Fatalf("encode: %v", err)
		}
		if buf.Len() > MaxSize {
			return // escaping made it longer than the limit
		}
		c2, err := Parse(buf.Bytes())
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, buf.Bytes())
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("re-parse differs:\nfirst  %+v\nsecond %+v\nencoded:\n%s", c, c2, buf.Bytes())
		}
	})
}

// TestConfigFuzzSeedExample keeps the fuzz seed "example" equal to the
// example config.
func TestConfigFuzzSeedExample(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("testdata", "agent.toml"))
	if err != nil {
		t.Fatal(err)
	}
	seed, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzParseConfig", "example"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "go test fuzz v1\n[]byte(" + strconv.Quote(string(example)) + ")\n"; string(seed) != want {
		t.Errorf("testdata/fuzz/FuzzParseConfig/example is not testdata/agent.toml; write it as:\n%s", want)
	}
}
