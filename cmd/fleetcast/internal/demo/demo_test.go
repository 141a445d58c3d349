package demo

import (
	"context"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

func goodOptions(t *testing.T) Options {
	return Options{Agents: 3, Size: 8 << 20, OriginMbit: 40, TempDir: t.TempDir(), Timeout: time.Minute}
}

// TestValidate checks each option's range and that the error names the
// option by its flag.
func TestValidate(t *testing.T) {
	if err := goodOptions(t).Validate(); err != nil {
		t.Fatalf("good options: %v", err)
	}
	for _, tc := range []struct {
		name string
		set  func(*Options)
		want string
	}{
		{"one agent", func(o *Options) { o.Agents = 1 }, "--agents 1: want 2 to 16"},
		{"too many agents", func(o *Options) { o.Agents = MaxAgents + 1 }, "--agents 17: want 2 to 16"},
		{"too small", func(o *Options) { o.Size = 1 << 10 }, "--size 1024 bytes: want 256.0 KiB to 1.0 GiB"},
		{"too large", func(o *Options) { o.Size = 2 << 30 }, "--size 2147483648 bytes"},
		{"slow origin", func(o *Options) { o.OriginMbit = 0.5 }, "--origin-rate 0.5: want 1 to 1000000 Mbit/s"},
		{"no origin rate", func(o *Options) { o.OriginMbit = math.NaN() }, "--origin-rate NaN"},
		{"fast origin", func(o *Options) { o.OriginMbit = 2e6 }, "--origin-rate 2e+06"},
		{"no timeout", func(o *Options) { o.Timeout = 0 }, "--timeout 0s: want a positive duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := goodOptions(t)
			tc.set(&o)
			if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestRunBadOptions checks that Run refuses bad options before it creates
// anything.
func TestRunBadOptions(t *testing.T) {
	o := goodOptions(t)
	o.Agents = 0
	var out strings.Builder
	if err := Run(context.Background(), o, &out); err == nil || !strings.Contains(err.Error(), "--agents 0") {
		t.Errorf("Run = %v, want an --agents error", err)
	}
	if entries, err := os.ReadDir(o.TempDir); err != nil || len(entries) != 0 {
		t.Errorf("Run created %d entries in %s (%v)", len(entries), o.TempDir, err)
	}
	if out.Len() != 0 {
		t.Errorf("Run wrote %q", out.String())
	}
}
