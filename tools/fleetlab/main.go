//go:build linux

// Command fleetlab measures a fleetcast rollout end to end on a LAN of
// network namespaces built on this machine, against the Kumar-Ross lower
// bound and, on the identical topology in the same run, against every host
// downloading from the origin over plain HTTP (curl) and a BitTorrent swarm
// (aria2, mktorrent, opentracker). It needs Linux and root.
//
// Usage:
//
//	fleetlab [flags]
//
// Example, the goals' configuration with both baselines, run from the
// repository's tools directory (a module of its own):
//
//	sudo go run ./fleetlab -n 8 -size 128MiB -origin-rate 40Mbit -peer-rate 400Mbit -out lab-out
//
// It writes into -out results.md (a Markdown table), results.json, done.png
// (the fraction of agents done over time, per system) and, when scenarios
// other than base ran, scenarios.png (the same for fleetcast's scenarios).
//
// With -mode scale it measures instead what a fleet costs while idle, after
// a small rollout, for each N of a list (issue 13; scale.go):
//
//	sudo go run ./fleetlab -mode scale -n 8,24,48 -idle 20s -out lab-out
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fleetcast/fleetcast/internal/units"

	"github.com/fleetcast/fleetcast/internal/netlab"
)

// options are fleetlab's flags.
type options struct {
	mode        string // "rollout" or "scale"
	n           int    // agent hosts of the lab being built
	ns          []int  // -mode scale: every N to measure
	idle        time.Duration
	settle      time.Duration
	size        int64
	rates       rates
	chunkMin    int64
	chunkAvg    int64
	chunkMax    int64
	seed        uint64
	poll        time.Duration
	deltaFrac   float64
	systems     []string
	scenarios   []string
	out         string
	json        bool
	timeout     time.Duration
	keep        bool
	tmpfs       bool   // the work directory on a tmpfs
	fleetcast   string // binary
	hostilepeer string // binary
	dir         string // work directory (under out)
	keys        string // the lab's keys, root and fleet secrets
}

// tmin is the Kumar-Ross lower bound on the time to get the artifact to
// every agent: max(S/u_origin, S/d_min, N*S/(u_origin + sum u_i)).
func (o *options) tmin() time.Duration {
	return kumarRoss(o.size, o.n, o.rates)
}

// rolloutTimeout is how long a rollout may take before the lab calls it
// failed: twenty times the lower bound, and at least three minutes.
func (o *options) rolloutTimeout() time.Duration {
	return max(20*o.tmin(), 3*time.Minute)
}

func kumarRoss(size int64, n int, r rates) time.Duration {
	bits := float64(size) * 8
	t := bits / float64(r.origin)
	if r.download > 0 {
		t = max(t, bits/float64(r.download))
	}
	if r.upload > 0 {
		t = max(t, float64(n)*bits/float64(r.origin+int64(n)*r.upload))
	}
	return time.Duration(t * float64(time.Second))
}

const usage = `fleetlab measures a fleetcast rollout on a namespaced LAN (Linux, root).

Examples, from the repository's tools directory:
  sudo go run ./fleetlab -n 8 -size 128MiB -origin-rate 40Mbit -peer-rate 400Mbit -out lab-out
  sudo go run ./fleetlab -n 4 -size 32MiB -scenarios base,churn,hostile,outage,late,delta
  sudo go run ./fleetlab -mode scale -n 8,24,48 -idle 20s -out lab-out

Flags:
`

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("fleetlab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	size, originRate, peerRate := "128MiB", "40Mbit", "400Mbit"
	cmin, cavg, cmax := "256KiB", "1MiB", "4MiB"
	systems, scens := "fleetcast,curl,aria2", "base"
	nList := "8"
	fs.StringVar(&o.mode, "mode", "rollout", "what to measure: rollout (a rollout's time and origin egress, scenarios, baselines) or scale (a fleet's cost while idle after a rollout, for each -n)")
	fs.StringVar(&nList, "n", nList, "number of agent `hosts`; with -mode scale a comma-separated list (default 8,24,48)")
	fs.DurationVar(&o.idle, "idle", 20*time.Second, "-mode scale: the idle window measured after every agent installed")
	fs.DurationVar(&o.settle, "settle", 0, "-mode scale: how long after every agent installed the idle window starts")
	fs.StringVar(&size, "size", size, "artifact `size` (KiB, MiB, GiB; default 4MiB with -mode scale)")
	fs.StringVar(&originRate, "origin-rate", originRate, "the origin host's upload `rate` (Kbit, Mbit, Gbit per second)")
	fs.StringVar(&peerRate, "peer-rate", peerRate, "each agent host's upload and download `rate`")
	fs.StringVar(&cmin, "chunk-min", cmin, "fleetcast publish --chunk-min")
	fs.StringVar(&cavg, "chunk-avg", cavg, "fleetcast publish --chunk-avg")
	fs.StringVar(&cmax, "chunk-max", cmax, "fleetcast publish --chunk-max")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the artifact's pseudo-random bytes")
	fs.DurationVar(&o.poll, "poll", time.Second, "the agents' poll_interval (default 5s with -mode scale)")
	fs.Float64Var(&o.deltaFrac, "delta", 0.01, "fraction of the artifact that the delta scenario's release 2 changes")
	fs.StringVar(&systems, "systems", systems, "comma-separated systems of the base scenario: fleetcast, curl, aria2")
	fs.StringVar(&scens, "scenarios", scens, "comma-separated fleetcast scenarios: "+strings.Join(scenarios, ", ")+", or all")
	fs.StringVar(&o.out, "out", "fleetlab-out", "output `directory`")
	fs.BoolVar(&o.json, "json", false, "print the results as JSON on stdout instead of the table")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up after this long")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (artifacts, agents' data and logs) under -out")
	fs.BoolVar(&o.tmpfs, "tmpfs", false, "put the work directory (every host's data) on a tmpfs: separate machines have separate disks, and one shared disk would be the bottleneck of a large lab (needs about 4 x size x (n+1) of memory)")
	fs.StringVar(&o.fleetcast, "fleetcast", "", "fleetcast `binary` (default: built from this checkout)")
	fs.StringVar(&o.hostilepeer, "hostilepeer", "", "hostilepeer `binary` (default: built from this checkout)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.mode == "scale" {
		if set["systems"] || set["scenarios"] {
			return nil, errors.New("-systems and -scenarios are for -mode rollout: -mode scale runs fleetcast only")
		}
		systems = "fleetcast"
		if !set["n"] {
			nList = "8,24,48"
		}
		if !set["size"] {
			size = "4MiB"
		}
		if !set["poll"] {
			o.poll = 5 * time.Second
		}
	}
	var err error
	if o.ns, err = parseList(nList); err != nil {
		return nil, err
	}
	o.n = slices.Max(o.ns)
	for _, p := range []struct {
		s     string
		v     *int64
		parse func(string) (int64, error)
	}{{size, &o.size, units.ParseBytes}, {originRate, &o.rates.origin, units.ParseBitRate}, {peerRate, &o.rates.upload, units.ParseBitRate},
		{cmin, &o.chunkMin, units.ParseBytes}, {cavg, &o.chunkAvg, units.ParseBytes}, {cmax, &o.chunkMax, units.ParseBytes}} {
		if *p.v, err = p.parse(p.s); err != nil {
			return nil, err
		}
	}
	o.rates.download = o.rates.upload
	o.systems = strings.Split(systems, ",")
	o.scenarios = strings.Split(scens, ",")
	if scens == "all" {
		o.scenarios = scenarios
	}
	return o, o.check()
}

// parseList parses -n: comma-separated numbers.
func parseList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("-n %q: want a number, or with -mode scale numbers separated by commas", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func (o *options) check() error {
	for _, n := range o.ns {
		if n < 1 || n > 200 {
			return fmt.Errorf("-n %d: want 1 to 200 agent hosts", n)
		}
	}
	switch {
	case o.mode != "rollout" && o.mode != "scale":
		return fmt.Errorf("-mode %q: want rollout or scale", o.mode)
	case o.mode == "rollout" && len(o.ns) != 1:
		return fmt.Errorf("-n %v: a list of N is for -mode scale; -mode rollout measures one N", o.ns)
	case o.mode == "scale" && o.idle <= 0:
		return errors.New("-idle must be positive")
	case o.size < 1:
		return errors.New("-size must be positive")
	case o.deltaFrac <= 0 || o.deltaFrac > 1:
		return fmt.Errorf("-delta %g: want a fraction in (0, 1]", o.deltaFrac)
	}
	for _, s := range o.systems {
		if !slices.Contains([]string{"fleetcast", "curl", "aria2"}, s) {
			return fmt.Errorf("-systems: unknown system %q (fleetcast, curl, aria2)", s)
		}
	}
	for _, s := range o.scenarios {
		if !slices.Contains(scenarios, s) {
			return fmt.Errorf("-scenarios: unknown scenario %q (%s)", s, strings.Join(scenarios, ", "))
		}
	}
	return nil
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleetlab:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(ctx, o, log); err != nil {
		fmt.Fprintln(os.Stderr, "fleetlab:", err)
		os.Exit(1)
	}
}

// run builds the lab, runs every system and scenario, and writes the report.
func run(ctx context.Context, o *options, log *slog.Logger) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("needs root: it creates network namespaces, veth links and tc shaping (run with sudo)")
	}
	if err := netlab.Available(); err != nil {
		return err
	}
	err = prepare(ctx, o)
	if o.dir != "" && !o.keep {
		defer os.RemoveAll(o.dir)
	}
	if o.tmpfs && o.dir != "" && !o.keep {
		defer unmount(o.dir, log)
	} else if o.tmpfs && o.dir != "" {
		defer log.Info("the work tmpfs stays mounted (-keep); unmount it when done", "dir", o.dir)
	}
	if err != nil {
		return err
	}
	if o.mode == "scale" {
		return runScale(ctx, o, log)
	}
	e, err := newEnv(ctx, o, log)
	defer func() {
		if e != nil {
			err = errors.Join(err, e.close())
		}
	}()
	if err != nil {
		return err
	}
	log.Info("lab ready", "agents", o.n, "size", bytesText(o.size), "t_min", o.tmin().Round(time.Millisecond), "dir", o.dir)
	rep := &report{Options: o.summary(), Size: o.size, TMin: o.tmin()}
	for _, r := range o.runs() {
		log.Info("run", "system", r.system, "scenario", r.scenario)
		cpu := readCPU()
		res, err := r.fn(ctx, e)
		if res.MachineCPU == 0 {
			res.MachineCPU = cpu.busySince() // a baseline: the whole run is the transfer
		}
		if !o.keep {
			os.RemoveAll(filepath.Join(o.dir, r.dir)) // each run's data: a tmpfs holds one at a time
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", r.system, r.scenario, err)
		}
		rep.Runs = append(rep.Runs, res)
		log.Info("run done", "system", r.system, "scenario", r.scenario, "elapsed", res.Elapsed.Round(time.Millisecond),
			"origin_egress", bytesText(res.OriginEgress), "problems", len(res.Problems))
	}
	return rep.write(o, os.Stdout)
}

// unmount removes the work directory's tmpfs, and with it what is on it.
func unmount(dir string, log *slog.Logger) {
	if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
		log.Warn("unmount the work tmpfs", slog.String("dir", dir), slog.String("reason", fmt.Sprintf("%v: %s", err, out)))
	}
}

// labRun is one system or scenario to run.
type labRun struct {
	system, scenario string
	dir              string // what it writes under the work directory
	fn               func(context.Context, *env) (runResult, error)
}

// runs lists the runs the flags ask for: fleetcast's scenarios, then the
// baselines (base scenario only).
func (o *options) runs() []labRun {
	var out []labRun
	if slices.Contains(o.systems, "fleetcast") {
		for _, s := range o.scenarios {
			out = append(out, labRun{"fleetcast", s, "fleetcast-" + s, func(ctx context.Context, e *env) (runResult, error) { return runFleetcast(ctx, e, o, s) }})
		}
	}
	if slices.Contains(o.systems, "curl") {
		out = append(out, labRun{"curl", "base", "curl", runCurl})
	}
	if slices.Contains(o.systems, "aria2") {
		out = append(out, labRun{"aria2", "base", "aria2", runTorrent})
	}
	return out
}

// prepare makes the work directory, finds or builds the binaries, installs
// the baselines' tools, and makes the lab's keys.
func prepare(ctx context.Context, o *options) error {
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(o.out, "work-")
	if err != nil {
		return err
	}
	if o.dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	if o.tmpfs {
		runs := int64(1) // a run's data is removed when the next starts
		if o.keep {
			runs = int64(len(o.runs()))
		}
		size := fmt.Sprintf("size=%d", runs*4*o.size*int64(o.n+1)+256<<20)
		if out, err := exec.CommandContext(ctx, "mount", "-t", "tmpfs", "-o", size, "fleetlab", o.dir).CombinedOutput(); err != nil {
			o.tmpfs = false
			return fmt.Errorf("mount a tmpfs on %s: %v: %s", o.dir, err, out)
		}
	}
	if o.fleetcast, err = findBinary(ctx, o.fleetcast, o.dir, "cmd/fleetcast"); err != nil {
		return err
	}
	if slices.Contains(o.scenarios, "hostile") {
		if o.hostilepeer, err = findBinary(ctx, o.hostilepeer, o.dir, "internal/cmd/hostilepeer"); err != nil {
			return err
		}
	}
	var tools []string
	if slices.Contains(o.systems, "curl") {
		tools = append(tools, "curl", "time")
	}
	if slices.Contains(o.systems, "aria2") {
		tools = append(tools, "aria2c", "mktorrent", "opentracker")
	}
	if err := requireTools(tools...); err != nil {
		return err
	}
	o.keys = filepath.Join(o.dir, "keys")
	if err := os.MkdirAll(o.keys, 0o700); err != nil {
		return err
	}
	return fleetcastCLI{bin: o.fleetcast, dir: o.keys}.setupKeys(ctx)
}
