// Command fleetsim simulates a rollout to thousands of agents on virtual
// time: each agent runs the product's scheduler (agent/swarm.Scheduler)
// against a discrete-event model of the network (per-host upload and
// download capacity, latency, one origin link shared by every LAN). See
// README.md for the model and its limits.
//
//	go run ./fleetsim -n 8,16,32 -size 128MiB -origin-rate 40Mbit -peer-rate 400Mbit
package main

import (
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fleetcast/fleetcast/internal/units"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fleetsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: fleetsim [flags]\n\nexample: fleetsim -n 8,16,32,100 -lans 1 -size 128MiB -origin-rate 40Mbit -peer-rate 400Mbit\n\n")
		fs.PrintDefaults()
	}
	p := defaultParams()
	ns := fs.String("n", "8", "agents in all, comma-separated for several runs")
	fs.IntVar(&p.LANs, "lans", 1, "LANs the agents are split into, sharing one origin link")
	size := fs.String("size", "128MiB", "artifact size")
	orate := fs.String("origin-rate", "40Mbit", "origin upload, shared by every LAN")
	prate := fs.String("peer-rate", "400Mbit", "each agent's upload and download")
	fs.DurationVar(&p.Latency, "latency", p.Latency, "one-way latency of a message in a LAN")
	fs.DurationVar(&p.OriginLatency, "origin-latency", p.OriginLatency, "one-way latency to the origin")
	fs.IntVar(&p.Degree, "degree", p.Degree, "0: each agent follows every LAN peer (up to 256) during the rollout, as the agent does; N: it follows N/2 (a bounded set, for comparison)")
	fs.DurationVar(&p.StartSpread, "start-spread", 0, "agents start at uniform random times in [0, this)")
	fs.Uint64Var(&p.Seed, "seed", p.Seed, "seed of the chunk sizes, digests, peer draws and starts")
	limit := fs.Duration("limit", time.Hour, "virtual time after which a run is given up")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the simulation to this file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintf(stderr, "fleetsim: %v\n", err)
			return 1
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	var err error
	if p.Size, err = units.ParseBytes(*size); err != nil {
		fmt.Fprintf(stderr, "fleetsim: -size: %v\n", err)
		return 2
	}
	for _, r := range []struct {
		flag string
		s    string
		v    *float64
	}{{"-origin-rate", *orate, &p.OriginRate}, {"-peer-rate", *prate, &p.PeerRate}} {
		bits, err := units.ParseBitRate(r.s)
		if err != nil {
			fmt.Fprintf(stderr, "fleetsim: %s: %v\n", r.flag, err)
			return 2
		}
		*r.v = float64(bits) / 8
	}
	var runs []int
	for _, f := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < p.LANs {
			fmt.Fprintf(stderr, "fleetsim: -n: %q: want a count of agents, at least one per LAN\n", f)
			return 2
		}
		runs = append(runs, n)
	}
	fmt.Fprintf(stdout, "%d LAN(s), %s, origin %s, agents %s, degree %d, latency %v, seed %d\n\n", p.LANs, *size, *orate, *prate, p.Degree, p.Latency, p.Seed)
	fmt.Fprintln(stdout, "| N | last agent | / T_min | median | origin egress / S | origin chunks by reason | busy | simulated in |")
	fmt.Fprintln(stdout, "|---|---|---|---|---|---|---|---|")
	for _, n := range runs {
		p.N = n
		s, err := newSim(p)
		if err != nil {
			fmt.Fprintf(stderr, "fleetsim: %v\n", err)
			return 2
		}
		r := s.run(*limit)
		fmt.Fprintln(stdout, row(n, r, p))
		if !r.Complete {
			fmt.Fprintf(stderr, "fleetsim: N=%d: not every agent had every chunk after %v\n", n, *limit)
			return 1
		}
	}
	return 0
}

func row(n int, r result, p params) string {
	var reasons []string
	for _, k := range slices.Sorted(maps.Keys(r.OriginReasons)) {
		reasons = append(reasons, fmt.Sprintf("%s %d", k, r.OriginReasons[k]))
	}
	s := float64(p.LANs) * float64(p.Size)
	return fmt.Sprintf("| %d | %.2f s | %.3fx | %.2f s | %.4fx | %s | %d | %.1f s |", n, r.Last, r.Last/r.TMin, r.Median,
		r.Origin/s, strings.Join(reasons, ", "), r.Busy, r.Wall.Seconds())
}
