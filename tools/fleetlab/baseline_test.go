//go:build linux

package main

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/internal/netlab"
)

// The test lab: an origin slower than the hosts' links, as a branch
// office's WAN link is, and 16 pieces of 1 MiB. aria2 connects to peers
// about 2 s after it starts; until then each host fetches from the seeder
// alone. With the origin as fast as 200 Mbit/s or only 8 pieces, how much
// that is varies a lot (8 MiB: 1.55x to 2.9x the artifact from the origin;
// 16 MiB at 100 Mbit/s: 1.3x to 1.85x over 15 runs).
const (
	baselineArtifactSize = 16 << 20
	baselineOriginBits   = 100_000_000
	baselineHostBits     = 400_000_000
)

// TestBaselinesInLab runs both baselines on an origin and three hosts in
// network namespaces: every host must end with the artifact, curl must take
// it from the origin three times over, aria2's swarm clearly less.
func TestBaselinesInLab(t *testing.T) {
	e := newBaselineEnv(t, 3)
	if err := requireTools("curl", "time", "aria2c", "mktorrent", "opentracker"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	tests := []struct {
		system    string
		run       func(context.Context, *env) (runResult, error)
		minEgress float64 // bounds of OriginEgress, in artifact sizes
		maxEgress float64
	}{
		{"curl", runCurl, 3, 3.3},
		{"aria2", runTorrent, 1, 2.4},
	}
	for _, tc := range tests {
		t.Run(tc.system, func(t *testing.T) {
			res, err := tc.run(ctx, e)
			if err != nil {
				t.Fatal(err)
			}
			checkBaseline(t, e, res, tc.system)
			checkNothingLeft(t, e)
			ratio := float64(res.OriginEgress) / float64(e.size)
			t.Logf("%s: elapsed %v, origin egress %d bytes = %.2f x the artifact", tc.system, res.Elapsed, res.OriginEgress, ratio)
			if ratio < tc.minEgress || ratio > tc.maxEgress {
				t.Errorf("%s: origin egress %.2f x the artifact, want %.1f to %.1f", tc.system, ratio, tc.minEgress, tc.maxEgress)
			}
		})
	}
}

// TestBaselinesCancelled ends each baseline's run once the origin sent 2 MiB
// of the 48 curl needs: every host must be reported not done, and nothing
// the run started may be left running.
func TestBaselinesCancelled(t *testing.T) {
	e := newBaselineEnv(t, 3)
	if err := requireTools("curl", "time", "aria2c", "mktorrent", "opentracker"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		system string
		run    func(context.Context, *env) (runResult, error)
	}{
		{"curl", runCurl},
		{"aria2", runTorrent},
	}
	for _, tc := range tests {
		t.Run(tc.system, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			res, err := tc.run(cancelAfterOriginSent(ctx, e, 2<<20), e)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Hosts) != len(e.hosts) || len(res.Problems) != len(e.hosts) {
				t.Errorf("%d hosts, problems %q; want %d of each", len(res.Hosts), res.Problems, len(e.hosts))
			}
			for _, h := range res.Hosts {
				if h.Done != 0 || !strings.Contains(h.Err, "not done when the run ended") {
					t.Errorf("%s: done %v, error %q; want not done", h.Host, h.Done, h.Err)
				}
			}
			checkNothingLeft(t, e)
		})
	}
}

// cancelAfterOriginSent returns a context cancelled once the origin host
// has sent n bytes more than now.
func cancelAfterOriginSent(parent context.Context, e *env, n int64) context.Context {
	ctx, cancel := context.WithCancel(parent)
	base, _ := e.origin.TxBytes()
	go func() {
		defer cancel()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if tx, err := e.origin.TxBytes(); err == nil && tx-base >= n {
				return
			}
		}
	}()
	return ctx
}

// checkNothingLeft checks that no process is left in the lab's namespaces.
func checkNothingLeft(t *testing.T, e *env) {
	t.Helper()
	for _, h := range append([]*netlab.Host{e.origin}, e.hosts...) {
		out, err := exec.Command("ip", "netns", "pids", h.Namespace()).Output()
		if err != nil {
			t.Errorf("ip netns pids %s: %v", h.Namespace(), err)
		} else if pids := strings.Fields(string(out)); len(pids) > 0 {
			t.Errorf("%s: processes %v left running", h.Name(), pids)
		}
	}
}

// checkBaseline checks what every baseline run must show: every host done
// with the verified artifact, within the run, with its client's usage.
func checkBaseline(t *testing.T, e *env, res runResult, system string) {
	t.Helper()
	if res.System != system || res.Start.IsZero() || len(res.Problems) > 0 {
		t.Errorf("run: system %q, start %v, problems %q", res.System, res.Start, res.Problems)
	}
	if len(res.Hosts) != len(e.hosts) {
		t.Fatalf("%d host results, want %d", len(res.Hosts), len(e.hosts))
	}
	for i, h := range res.Hosts {
		t.Logf("%s: done %v, rss %d KiB, cpu %v", h.Host, h.Done, h.PeakRSS>>10, h.CPU)
		if h.Host != e.hosts[i].Name() || h.Err != "" || h.Done <= 0 || h.Done > res.Elapsed {
			t.Errorf("host %d: %+v (run elapsed %v)", i, h, res.Elapsed)
		}
		if h.PeakRSS < 1<<20 || h.CPU <= 0 {
			t.Errorf("%s: peak RSS %d bytes, CPU %v: rusage of the client missing", h.Host, h.PeakRSS, h.CPU)
		}
	}
}

// newBaselineEnv builds a lab of an origin host and n agent hosts, with a
// random artifact of baselineArtifactSize served by this process on the
// origin host, or skips when network namespaces are not available (fails
// instead when FLEETCAST_REQUIRE_NETNS=1).
func newBaselineEnv(t *testing.T, n int) *env {
	lab := newTestLab(t)
	e := &env{lab: lab, dir: t.TempDir(), size: baselineArtifactSize, log: slog.New(slog.DiscardHandler),
		rates: rates{origin: baselineOriginBits, upload: baselineHostBits, download: baselineHostBits}}
	var err error
	if e.origin, err = lab.AddHost("origin", &netlab.Shape{EgressBits: e.rates.origin}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		h, err := lab.AddHost("h"+string(rune('1'+i)), &netlab.Shape{EgressBits: e.rates.upload, IngressBits: e.rates.download})
		if err != nil {
			t.Fatal(err)
		}
		e.hosts = append(e.hosts, h)
	}
	e.artifact = filepath.Join(e.dir, "artifact-1.bin")
	writeRandomFile(t, e.artifact, e.size)
	e.originURL = serveArtifact(t, e.origin, e.artifact)
	return e
}

// newTestLab returns a new lab without hosts, closed when the test ends, or
// skips when network namespaces are not available (fails instead when
// FLEETCAST_REQUIRE_NETNS=1).
func newTestLab(t *testing.T) *netlab.Lab {
	t.Helper()
	if err := netlab.Available(); err != nil {
		if os.Getenv("FLEETCAST_REQUIRE_NETNS") == "1" {
			t.Fatalf("FLEETCAST_REQUIRE_NETNS=1 but: %v", err)
		}
		t.Skipf("needs root and network namespaces (set FLEETCAST_REQUIRE_NETNS=1 to fail instead): %v", err)
	}
	lab, err := netlab.New("fclab")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
	})
	return lab
}

func writeRandomFile(t *testing.T, path string, size int64) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// serveArtifact serves file at /artifact from this process on host's
// network and returns the base URL.
func serveArtifact(t *testing.T, host *netlab.Host, file string) string {
	ln, err := host.Listen("tcp", host.IP()+":8080")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /artifact", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, file) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("origin server: %v", err)
		}
	}()
	t.Cleanup(func() { srv.Close() })
	return "http://" + host.IP() + ":8080"
}
