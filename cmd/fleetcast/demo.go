package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fleetcast/fleetcast/cmd/fleetcast/internal/demo"
	"github.com/fleetcast/fleetcast/internal/units"
)

const demoUsage = `fleetcast demo [--agents 4] [--size 24MiB] [--origin-rate 40] [--keep] [--dir DIR] [--timeout 2m]

Runs a small fleet on this machine, on loopback only and without root: makes a throwaway
signing key and trust root, publishes a release into an origin served on 127.0.0.1 at a
limited rate (like a branch office's WAN link), starts --agents agents as child processes,
shows the rollout live and what each agent fetched from peers and from the origin, then
publishes a small change and shows the delta update. Everything lives in one temporary
directory under --dir, removed at the end unless --keep (or a failure) keeps it.

Example: fleetcast demo --agents 4 --size 24MiB`

func cmdDemo(args []string, env *cliEnv) error {
	opts, err := parseDemoFlags(args, env)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return demo.Run(ctx, opts, env.stdout)
}

func parseDemoFlags(args []string, env *cliEnv) (demo.Options, error) {
	o := demo.Options{}
	fs := newFlagSet("demo", demoUsage, env.stderr)
	fs.IntVar(&o.Agents, "agents", 4, fmt.Sprintf("agents to run, %d to %d", demo.MinAgents, demo.MaxAgents))
	size := fs.String("size", "24MiB", "release size: bytes, or a number with KiB, MiB or GiB")
	fs.Float64Var(&o.OriginMbit, "origin-rate", 40, "origin bandwidth in Mbit/s, shared by all agents (at least 1)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the demo directory (keys, origin, agent configs and logs) and print where it is")
	fs.StringVar(&o.TempDir, "dir", os.TempDir(), "create the demo directory in this directory")
	fs.DurationVar(&o.Timeout, "timeout", 2*time.Minute, "stop with an error if the demo takes longer")
	if err := parse(fs, args); err != nil {
		return o, err
	}
	if fs.NArg() != 0 {
		return o, usagef("want no arguments")
	}
	var err error
	if o.Size, err = units.ParseBytes(*size); err != nil {
		return o, usagef("--size %q: %v", *size, err)
	}
	if err := o.Validate(); err != nil {
		return o, usageError{err.Error()}
	}
	return o, nil
}
