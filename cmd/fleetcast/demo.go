package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fleetcast/fleetcast/internal/units"

	"github.com/fleetcast/fleetcast/agent/statusclient"
	"github.com/fleetcast/fleetcast/signing"
)

const demoUsage = `fleetcast demo [--agents 4] [--size 24MiB] [--origin-rate 40] [--keep] [--dir DIR] [--timeout 2m]

Runs a small fleet on this machine, on loopback only and without root: makes a throwaway
signing key and trust root, publishes a release into an origin served on 127.0.0.1 at a
limited rate (like a branch office's WAN link), starts --agents agents as child processes,
shows the rollout live and what each agent fetched from peers and from the origin, then
publishes a small change and shows the delta update. Everything lives in one temporary
directory under --dir, removed at the end unless --keep (or a failure) keeps it.

Example: fleetcast demo --agents 4 --size 24MiB`

// Demo limits: enough to show the point, small enough for one machine.
const (
	demoMinAgents     = 2
	demoMaxAgents     = 16
	demoMinSize       = 256 << 10
	demoMaxSize       = 1 << 30
	demoMinRate       = 1.0 // Mbit/s
	demoDefaultAgents = 4
)

// errDemoTimeout is the cause of a demo stopped by --timeout.
var errDemoTimeout = errors.New("the demo took longer than --timeout")

type demoOptions struct {
	agents     int
	size       int64
	originMbit float64
	keep       bool
	parent     string // the temporary directory is created here
	timeout    time.Duration
}

// demo is one run: its directory, key, origin and agents.
type demo struct {
	opts   demoOptions
	out    io.Writer
	tty    bool
	dir    string
	start  time.Time
	key    *signing.PrivateKey
	origin *demoOrigin
	agents []*demoAgent
	status *statusclient.Client
}

func cmdDemo(args []string, env *cliEnv) error {
	opts, err := parseDemoFlags(args, env)
	if err != nil {
		return err
	}
	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeoutCause(sigCtx, opts.timeout, errDemoTimeout)
	defer cancel()
	d, err := newDemo(opts, env.stdout)
	if err != nil {
		return err
	}
	err = d.run(ctx)
	d.shutdown()
	interrupted := sigCtx.Err() != nil && !errors.Is(context.Cause(ctx), errDemoTimeout)
	return d.finish(err, interrupted)
}

func parseDemoFlags(args []string, env *cliEnv) (demoOptions, error) {
	o := demoOptions{}
	fs := newFlagSet("demo", demoUsage, env.stderr)
	fs.IntVar(&o.agents, "agents", demoDefaultAgents, fmt.Sprintf("agents to run, %d to %d", demoMinAgents, demoMaxAgents))
	size := fs.String("size", "24MiB", "release size: bytes, or a number with KiB, MiB or GiB")
	fs.Float64Var(&o.originMbit, "origin-rate", 40, "origin bandwidth in Mbit/s, shared by all agents (at least 1)")
	fs.BoolVar(&o.keep, "keep", false, "keep the demo directory (keys, origin, agent configs and logs) and print where it is")
	fs.StringVar(&o.parent, "dir", os.TempDir(), "create the demo directory in this directory")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "stop with an error if the demo takes longer")
	if err := parse(fs, args); err != nil {
		return o, err
	}
	if fs.NArg() != 0 {
		return o, usagef("want no arguments")
	}
	var err error
	if o.size, err = units.ParseBytes(*size); err != nil {
		return o, usagef("--size %q: %v", *size, err)
	}
	return o, o.check()
}

func (o demoOptions) check() error {
	switch {
	case o.agents < demoMinAgents || o.agents > demoMaxAgents:
		return usagef("--agents %d: want %d to %d", o.agents, demoMinAgents, demoMaxAgents)
	case o.size < demoMinSize || o.size > demoMaxSize:
		return usagef("--size %d bytes: want %s to %s", o.size, units.FormatBytes(demoMinSize), units.FormatBytes(demoMaxSize))
	case !(o.originMbit >= demoMinRate) || o.originMbit > 1e6:
		return usagef("--origin-rate %v: want %v to 1000000 Mbit/s", o.originMbit, demoMinRate)
	case o.timeout <= 0:
		return usagef("--timeout %v: want a positive duration, e.g. 2m", o.timeout)
	}
	return nil
}

func newDemo(opts demoOptions, out io.Writer) (*demo, error) {
	dir, err := os.MkdirTemp(opts.parent, "fleetcast-demo-")
	if err != nil {
		return nil, fmt.Errorf("create the demo directory: %w", err)
	}
	return &demo{opts: opts, out: out, tty: demoTerminal(out), dir: dir, start: time.Now()}, nil
}

// run is the whole demo: set up, two releases, check the installed files.
func (d *demo) run(ctx context.Context) error {
	fmt.Fprintf(d.out, "fleetcast demo: %d agents and a release of %s on this machine, on loopback only\n",
		d.opts.agents, units.FormatBytes(d.opts.size))
	fmt.Fprintf(d.out, "directory %s (%s)\n", d.dir, map[bool]string{true: "kept at the end: --keep", false: "removed at the end"}[d.opts.keep])
	steps := []func(context.Context) error{d.makeTrust, d.startOrigin, d.makeFleet, d.writeReleases, d.startAgents, d.waitForPeers,
		d.releaseStep(1), d.releaseStep(2), d.verifyInstalled}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return demoCtxErr(ctx, err)
		}
	}
	return nil
}

// demoCtxErr says why the demo stopped when its context ended.
func demoCtxErr(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), errDemoTimeout) {
		return fmt.Errorf("%w: %w", errDemoTimeout, err)
	}
	return err
}

// shutdown stops the agents and the origin, whatever happened.
func (d *demo) shutdown() {
	if len(d.agents) > 0 {
		d.stopAgents()
	}
	if d.origin != nil {
		d.origin.close()
	}
}

// finish removes the directory after success or an interrupt (unless
// --keep) and keeps it, saying where, after a failure.
func (d *demo) finish(err error, interrupted bool) error {
	took := time.Since(d.start).Round(100 * time.Millisecond)
	if err != nil && !interrupted {
		fmt.Fprintf(d.out, "\ndemo FAILED after %v; kept %s for inspection (agent logs: agent*/agent.log)\n", took, d.dir)
		return err
	}
	if d.opts.keep {
		fmt.Fprintf(d.out, "kept %s (keys, origin, agent configs, data and logs)\n", d.dir)
	} else if rmErr := os.RemoveAll(d.dir); rmErr != nil {
		return fmt.Errorf("remove the demo directory %s: %w", d.dir, rmErr)
	} else {
		fmt.Fprintf(d.out, "removed %s\n", d.dir)
	}
	if interrupted {
		return errors.New("interrupted; agents stopped")
	}
	fmt.Fprintf(d.out, "demo done in %v\n", took)
	return nil
}
