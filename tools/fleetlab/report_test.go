//go:build linux

package main

import (
	"testing"
	"time"
)

func TestKumarRoss(t *testing.T) {
	const mib = 1 << 20
	for _, tt := range []struct {
		name string
		size int64
		n    int
		r    rates
		want float64 // seconds
	}{
		// The goal: the origin's upload is the bound.
		{"origin bound", 128 * mib, 8, rates{origin: 40e6, upload: 400e6, download: 400e6}, 128 * mib * 8 / 40e6},
		// Slow downloads: the slowest agent's download is the bound.
		{"download bound", 128 * mib, 8, rates{origin: 1e9, upload: 1e9, download: 10e6}, 128 * mib * 8 / 10e6},
		// Slow uploads: the fleet's total upload capacity is the bound.
		{"upload bound", 128 * mib, 100, rates{origin: 100e6, upload: 1e6, download: 1e9}, 100 * 128 * mib * 8 / (100e6 + 100*1e6)},
	} {
		got := kumarRoss(tt.size, tt.n, tt.r).Seconds()
		if d := got - tt.want; d > 1e-6 || d < -1e-6 {
			t.Errorf("%s: T_min = %.6f s, want %.6f", tt.name, got, tt.want)
		}
	}
}

func TestRunStats(t *testing.T) {
	s := func(d ...int) []hostResult {
		var hs []hostResult
		for _, x := range d {
			hs = append(hs, hostResult{Done: time.Duration(x) * time.Second, PeakRSS: int64(x), CPU: time.Second})
		}
		return hs
	}
	all := runResult{Hosts: s(3, 1, 2, 4, 5, 6, 7, 8, 9, 10), Elapsed: 10 * time.Second}
	st := all.stats()
	if st.last != 10*time.Second || st.median != 5*time.Second || st.p90 != 9*time.Second || st.done != 10 || st.peakRSS != 10 || st.cpu != time.Second {
		t.Errorf("stats = %+v", st)
	}
	// A host that never finished: the last time is the run's length, a lower bound.
	part := runResult{Hosts: s(1, 2, 0), Elapsed: 60 * time.Second}
	if st := part.stats(); st.last != 60*time.Second || st.done != 2 {
		t.Errorf("stats with a host not done = %+v", st)
	}
}
