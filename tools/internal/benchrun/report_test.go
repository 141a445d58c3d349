package benchrun

import (
	"testing"
	"time"
)

func TestMedianAndPeak(t *testing.T) {
	wall := func(m Sample) time.Duration { return m.Wall }
	rss := func(m Sample) int64 { return m.MaxRSS }
	tests := []struct {
		name       string
		ms         []Sample
		wantMedian time.Duration
		wantPeak   int64
	}{
		{"one", []Sample{{Wall: 2, MaxRSS: 5}}, 2, 5},
		{"odd", []Sample{{Wall: 3, MaxRSS: 1}, {Wall: 1, MaxRSS: 9}, {Wall: 2}}, 2, 9},
		{"even: the upper middle", []Sample{{Wall: 4}, {Wall: 1}, {Wall: 3}, {Wall: 2}}, 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Median(tt.ms, wall); got != tt.wantMedian {
				t.Errorf("Median = %v, want %v", got, tt.wantMedian)
			}
			if got := Peak(tt.ms, rss); got != tt.wantPeak {
				t.Errorf("Peak = %d, want %d", got, tt.wantPeak)
			}
		})
	}
}

func TestMiB(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "n/a"},
		{64 << 20, "64.0 MiB"},
		{1<<30 + 1<<19, "1024.5 MiB"},
		{100 << 10, "0.1 MiB"},
	}
	for _, tt := range tests {
		if got := MiB(tt.n); got != tt.want {
			t.Errorf("MiB(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
