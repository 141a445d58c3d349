package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestRollout runs small rollouts and checks what must hold whatever the
// model's figures: every agent ends with every chunk, the origin sent the
// artifact at least once per LAN, and nobody finished before T_min.
func TestRollout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		n, lans int
		degree  int
		spread  time.Duration
	}{
		{"one agent", 1, 1, 32, 0},
		{"N=8", 8, 1, 32, 0},
		{"N=8 bounded peer sets", 8, 1, 4, 0},
		{"N=8 two LANs, spread starts", 8, 2, 32, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := defaultParams()
			p.N, p.LANs, p.Degree, p.StartSpread = tc.n, tc.lans, tc.degree, tc.spread
			p.Size = 8 << 20
			s, err := newSim(p)
			if err != nil {
				t.Fatal(err)
			}
			r := s.run(time.Hour)
			if !r.Complete || len(s.done) != tc.n {
				t.Fatalf("%d of %d agents done", len(s.done), tc.n)
			}
			for _, ln := range s.lans {
				for _, a := range ln.agents {
					for i := range s.chunks {
						if a.bits[i/8]&(1<<(i%8)) == 0 {
							t.Fatalf("agent %s lacks chunk %d", a.id, i)
						}
					}
				}
			}
			if want := float64(tc.lans) * float64(p.Size); r.Origin < want*(1-1e-9) {
				t.Errorf("origin sent %.0f bytes; want at least %.0f", r.Origin, want)
			}
			if r.Last < r.TMin*(1-1e-9) {
				t.Errorf("last agent at %.3f s, before T_min %.3f s", r.Last, r.TMin)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"-n", "x"}, {"-size", "big"}, {"-origin-rate", "fast"}, {"-n", "1", "-lans", "2"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "fleetsim") {
			t.Errorf("%q: exit %d, %q; want 2 and a message", args, code, errOut.String())
		}
	}
}
