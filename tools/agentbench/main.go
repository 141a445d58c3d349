//go:build unix

// Command agentbench measures one `fleetcast agent --once` updating a large
// artifact from a local origin served by nginx, against `curl -o` fetching
// the same bytes as one file from the same server to the same filesystem,
// interleaved in one run (issue 3: at least 0.8x curl's throughput, peak RSS
// under 64 MiB). It then publishes a second release with 1% of the bytes
// changed and reports how much of it the agent fetches from the origin.
//
//	cd tools && go run ./agentbench -size 1GiB -runs 3
//
// It needs nginx (/usr/sbin/nginx, Debian package nginx) and curl, and
// prints a Markdown table for docs/BENCHMARKS.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/fleetcast/fleetcast/internal/units"
	"github.com/fleetcast/fleetcast/tools/internal/benchrun"
)

type config struct {
	size  int64
	runs  int
	dir   string
	conns int
	fleet string
	keep  bool
}

// sample is one timed run of one system.
type sample struct {
	benchrun.Sample
	verified time.Duration // agent only: "artifact verified" seconds= (assembly and verification)
}

var (
	cleanupMu  sync.Mutex
	cleanups   []func()
	cleanupRan bool
)

// atExit registers f to run, last registered first, when the program ends,
// normally, on an error or on SIGINT/SIGTERM.
func atExit(f func()) {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	cleanups = append(cleanups, f)
}

func runCleanups() {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	if cleanupRan {
		return
	}
	cleanupRan = true
	for _, f := range slices.Backward(cleanups) {
		f()
	}
}

func main() {
	var cfg config
	var size string
	flag.StringVar(&size, "size", "1GiB", "artifact size (KiB, MiB, GiB suffixes)")
	flag.IntVar(&cfg.runs, "runs", 3, "runs per system, interleaved; the median is reported")
	flag.StringVar(&cfg.dir, "dir", "/var/tmp/agentbench", "work directory (on the filesystem under test, a real disk)")
	flag.IntVar(&cfg.conns, "conns", 4, "the agent's origin_connections")
	flag.StringVar(&cfg.fleet, "fleetcast", "", "fleetcast binary (default: build the repository's cmd/fleetcast)")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the work directory")
	flag.Parse()
	n, err := units.ParseBytes(size)
	if err != nil {
		fatal(err)
	}
	cfg.size = n
	if cfg.runs < 1 || cfg.conns < 1 || cfg.conns > 64 {
		fatal(fmt.Errorf("want -runs >= 1 and -conns from 1 to 64"))
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "agentbench: %v: stopping nginx and removing the work directory\n", s)
		runCleanups()
		os.Exit(130)
	}()
	err = run(cfg)
	runCleanups()
	if err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "agentbench:", err)
	runCleanups()
	os.Exit(1)
}

func run(cfg config) error {
	if _, err := os.Stat(nginxPath); err != nil {
		return fmt.Errorf("%s not found: install nginx (Debian: apt-get install -y nginx): %w", nginxPath, err)
	}
	if err := os.MkdirAll(cfg.dir, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp(cfg.dir, "run-")
	if err != nil {
		return err
	}
	if cfg.keep {
		fmt.Fprintln(os.Stderr, "work directory:", work)
	} else {
		atExit(func() {
			os.RemoveAll(work)
			os.Remove(cfg.dir) // only when empty, i.e. when nothing else lives there
		})
	}
	b := &bench{cfg: cfg, work: work}
	if err := b.prepare(); err != nil {
		return err
	}
	ng, err := startNginx(work, b.path("origin"))
	if err != nil {
		return err
	}
	atExit(ng.stop)
	b.url = ng.url
	if err := os.WriteFile(b.path("agent.toml"), []byte(b.agentConfig()), 0o644); err != nil {
		return err
	}
	if err := b.warm(); err != nil {
		return err
	}

	systems := []system{
		{"curl -o", b.runCurl},
		{"fleetcast agent --once", b.runAgent},
	}
	for i := 0; i < cfg.runs; i++ { // interleave systems so drift hits all alike
		for _, s := range systems {
			benchrun.Settle()
			ms, err := s.run()
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			for name, m := range ms {
				fmt.Fprintf(os.Stderr, "run %d %-34s wall %7.3fs verified %7.3fs cpu %6.3fs (user %.3f sys %.3f) rss %s\n",
					i+1, name, m.Wall.Seconds(), m.verified.Seconds(), m.CPU().Seconds(), m.User.Seconds(), m.Sys.Seconds(), benchrun.MiB(m.MaxRSS))
				b.samples[name] = append(b.samples[name], m)
			}
		}
	}
	benchrun.Settle()
	d, err := b.runDelta()
	if err != nil {
		return fmt.Errorf("delta update: %w", err)
	}
	printTable(cfg, b.samples, d)
	return nil
}

type system struct {
	name string
	run  func() (map[string]sample, error)
}

const (
	nameCurl      = "curl -o"
	nameCurlSync  = "curl -o, then sync FILE (fsync)"
	nameAgent     = "fleetcast agent --once"
	nameAgentVeri = "agent, to verified artifact"
)

func printTable(cfg config, samples map[string][]sample, d delta) {
	wall := func(m sample) time.Duration { return m.Wall }
	cpu := func(m sample) time.Duration { return m.CPU() }
	rss := func(m sample) int64 { return m.MaxRSS }
	curl := benchrun.Median(samples[nameCurl], wall)
	curlSync := benchrun.Median(samples[nameCurlSync], wall)
	agent := samples[nameAgent]
	agentInst := benchrun.Median(agent, wall)
	agentVeri := benchrun.Median(agent, func(m sample) time.Duration { return m.verified })
	mbs := func(t time.Duration) float64 { return float64(cfg.size) / 1e6 / t.Seconds() }

	fmt.Printf("Artifact %s of random bytes from nginx on 127.0.0.1 (page cache), %d runs each, interleaved "+
		"(median wall time, peak RSS of any run), origin_connections = %d, %d CPUs, GOOS=%s.\n\n",
		benchrun.MiB(cfg.size), cfg.runs, cfg.conns, runtime.NumCPU(), runtime.GOOS)
	fmt.Println("| system | time (median) | MB/s | throughput ratio to its baseline | CPU user+sys (median) | peak RSS |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	row := func(name string, t time.Duration, ratio string, cpuT time.Duration, peak int64) {
		c := "n/a (in the process below)"
		if cpuT > 0 {
			c = fmt.Sprintf("%.2f s", cpuT.Seconds())
		}
		fmt.Printf("| %s | %.3f s | %.0f | %s | %s | %s |\n", name, t.Seconds(), mbs(t), ratio, c, benchrun.MiB(peak))
	}
	row(nameCurl, curl, "baseline", benchrun.Median(samples[nameCurl], cpu), benchrun.Peak(samples[nameCurl], rss))
	row(nameCurlSync, curlSync, "baseline", benchrun.Median(samples[nameCurlSync], cpu), benchrun.Peak(samples[nameCurlSync], rss))
	row(nameAgentVeri+" (`seconds=` of \"artifact verified\")", agentVeri,
		fmt.Sprintf("%.2fx of curl -o; %.2fx of curl -o + fsync (it includes the store's fsync)",
			curl.Seconds()/agentVeri.Seconds(), curlSync.Seconds()/agentVeri.Seconds()), 0, 0)
	row(nameAgent+", to installed (whole process)", agentInst,
		fmt.Sprintf("%.2fx of curl -o + fsync; %.2fx of curl -o", curlSync.Seconds()/agentInst.Seconds(), curl.Seconds()/agentInst.Seconds()), benchrun.Median(agent, cpu), benchrun.Peak(agent, rss))
	fmt.Println()
	fmt.Print("Per run (s): curl")
	for _, m := range samples[nameCurl] {
		fmt.Printf(" %.3f", m.Wall.Seconds())
	}
	fmt.Print("; curl+fsync")
	for _, m := range samples[nameCurlSync] {
		fmt.Printf(" %.3f", m.Wall.Seconds())
	}
	fmt.Print("; agent verified")
	for _, m := range agent {
		fmt.Printf(" %.3f", m.verified.Seconds())
	}
	fmt.Print("; agent installed")
	for _, m := range agent {
		fmt.Printf(" %.3f", m.Wall.Seconds())
	}
	fmt.Print("; agent CPU user/sys")
	for _, m := range agent {
		fmt.Printf(" %.2f/%.2f", m.User.Seconds(), m.Sys.Seconds())
	}
	fmt.Println(".")
	fmt.Println()
	fmt.Printf("Delta update (release 2: %s changed in %d places, over installed release 1): origin_bytes=%d of %d "+
		"(%.2f%% of the artifact, %d chunks), to verified %.3f s, to installed %.3f s, peak RSS %s.\n",
		benchrun.MiB(d.changed), d.places, d.originBytes, cfg.size, 100*float64(d.originBytes)/float64(cfg.size), d.originChunks,
		d.m.verified.Seconds(), d.m.Wall.Seconds(), benchrun.MiB(d.m.MaxRSS))
}
