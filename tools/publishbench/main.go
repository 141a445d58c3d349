// Command publishbench measures `fleetcast publish` on a large random file
// against the two floors it cannot beat, side by side in one run on one
// filesystem: a plain copy with fsync (dd bs=4M conv=fsync, the disk floor)
// and one single-threaded SHA-256 pass (the hashing floor). It also runs
// `casync make` on the same file when casync is installed.
//
//	cd tools && go run ./publishbench -size 1GiB -runs 3 -dir /var/tmp
//
// It prints a Markdown table for docs/BENCHMARKS.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/fleetcast/fleetcast/internal/units"
	"github.com/fleetcast/fleetcast/tools/internal/benchrun"
)

type config struct {
	size     int64
	runs     int
	dir      string
	fleet    string
	keep     bool
	noCasync bool
}

func main() {
	var cfg config
	var size string
	flag.StringVar(&size, "size", "1GiB", "artifact size (KiB, MiB, GiB suffixes)")
	flag.IntVar(&cfg.runs, "runs", 3, "runs per system; the median is reported")
	flag.StringVar(&cfg.dir, "dir", os.TempDir(), "work directory (the filesystem under test)")
	flag.StringVar(&cfg.fleet, "fleetcast", "", "fleetcast binary (default: build the repository's cmd/fleetcast)")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the work directory")
	flag.BoolVar(&cfg.noCasync, "no-casync", false, "skip casync even when installed")
	flag.Parse()
	n, err := units.ParseBytes(size)
	if err != nil {
		fatal(err)
	}
	cfg.size = n
	if err := run(cfg); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "publishbench:", err)
	os.Exit(1)
}

func run(cfg config) error {
	work, err := os.MkdirTemp(cfg.dir, "publishbench-")
	if err != nil {
		return err
	}
	if !cfg.keep {
		defer os.RemoveAll(work)
	}
	b := &bench{cfg: cfg, work: work}
	if err := b.prepare(); err != nil {
		return err
	}
	systems := []system{
		{"dd bs=4M conv=fsync (disk floor)", b.runDD},
		{"SHA-256, 1 thread (hash floor)", b.runHash},
		{"fleetcast publish", b.runPublish},
	}
	if _, err := exec.LookPath("casync"); err == nil && !cfg.noCasync {
		systems = append(systems, system{"casync make (256K/1M/4M chunks)", b.runCasync})
	}
	for i := 0; i < cfg.runs; i++ { // interleave systems so drift hits all alike
		for _, s := range systems {
			benchrun.Settle()
			m, err := s.run()
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			fmt.Fprintf(os.Stderr, "run %d %-36s %8.3fs  rss %s\n", i+1, s.name, m.Wall.Seconds(), benchrun.MiB(m.MaxRSS))
			b.samples[s.name] = append(b.samples[s.name], m)
		}
	}
	printTable(cfg, systems, b.samples)
	return nil
}

type system struct {
	name string
	run  func() (benchrun.Sample, error)
}

func printTable(cfg config, systems []system, samples map[string][]benchrun.Sample) {
	wall := func(m benchrun.Sample) time.Duration { return m.Wall }
	rss := func(m benchrun.Sample) int64 { return m.MaxRSS }
	floor := max(benchrun.Median(samples[systems[0].name], wall), benchrun.Median(samples[systems[1].name], wall))
	fmt.Printf("Artifact %s of random bytes, %d runs each (median wall time, peak RSS of any run), %d CPUs, GOOS=%s.\n\n",
		benchrun.MiB(cfg.size), cfg.runs, runtime.NumCPU(), runtime.GOOS)
	fmt.Println("| system | wall time | MB/s | ratio to max(floors) | peak RSS |")
	fmt.Println("|---|---:|---:|---:|---:|")
	for _, s := range systems {
		ms := samples[s.name]
		t := benchrun.Median(ms, wall)
		fmt.Printf("| %s | %.3f s | %.0f | %.2fx | %s |\n", s.name, t.Seconds(),
			float64(cfg.size)/1e6/t.Seconds(), t.Seconds()/floor.Seconds(), benchrun.MiB(benchrun.Peak(ms, rss)))
	}
}

func (b *bench) path(name string) string { return filepath.Join(b.work, name) }
