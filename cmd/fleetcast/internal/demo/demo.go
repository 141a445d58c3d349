// Package demo is "fleetcast demo": a small fleet on this machine, on
// loopback only and without root. It makes a throwaway signing key and
// trust root, publishes a release into an origin served on 127.0.0.1 at a
// limited rate, starts agents as child processes, shows the rollout live and
// what each agent fetched from peers and from the origin, then publishes a
// small change and shows the delta update.
//
// The agents are this program run again as "fleetcast agent --config ...":
// Run works only inside the fleetcast binary, which is why the package
// lives under cmd/fleetcast/internal.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/fleetcast/fleetcast/internal/units"

	"github.com/fleetcast/fleetcast/agent/statusclient"
	"github.com/fleetcast/fleetcast/signing"
)

// Limits of the demo: enough to show the point, small enough for one machine.
const (
	MinAgents = 2
	MaxAgents = 16
	minSize   = 256 << 10
	maxSize   = 1 << 30
	minRate   = 1.0 // Mbit/s
)

// errTimeout is the cause of a demo stopped by --timeout.
var errTimeout = errors.New("the demo took longer than --timeout")

// Options are the settings of one run, the flags of "fleetcast demo".
type Options struct {
	Agents     int           // agents to run, MinAgents to MaxAgents
	Size       int64         // bytes of the release, 256 KiB to 1 GiB
	OriginMbit float64       // the origin's bandwidth in Mbit/s, shared by all agents
	Keep       bool          // keep the demo directory after a success or an interrupt
	TempDir    string        // the demo directory is created in this directory (empty: os.TempDir())
	Timeout    time.Duration // the demo fails if it takes longer
}

// Validate reports the first option out of its range, named by its flag.
func (o Options) Validate() error {
	switch {
	case o.Agents < MinAgents || o.Agents > MaxAgents:
		return fmt.Errorf("--agents %d: want %d to %d", o.Agents, MinAgents, MaxAgents)
	case o.Size < minSize || o.Size > maxSize:
		return fmt.Errorf("--size %d bytes: want %s to %s", o.Size, units.FormatBytes(minSize), units.FormatBytes(maxSize))
	case !(o.OriginMbit >= minRate) || o.OriginMbit > 1e6:
		return fmt.Errorf("--origin-rate %v: want %v to 1000000 Mbit/s", o.OriginMbit, minRate)
	case o.Timeout <= 0:
		return fmt.Errorf("--timeout %v: want a positive duration, e.g. 2m", o.Timeout)
	}
	return nil
}

// demo is one run: its directory, key, origin and agents.
type demo struct {
	opts   Options
	out    io.Writer
	tty    bool
	dir    string
	start  time.Time
	key    *signing.PrivateKey
	origin *originServer
	agents []*agent
	status *statusclient.Client
}

// Run runs the demo in a new directory under opts.TempDir, writing what
// happens to out, and stops its agents before it returns. It removes the
// directory after a success, or when ctx ends (an interrupt, which it
// returns as an error), unless opts.Keep; after a failure, opts.Timeout
// included, it keeps the directory and says where it is.
func Run(ctx context.Context, opts Options, out io.Writer) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	runCtx, cancel := context.WithTimeoutCause(ctx, opts.Timeout, errTimeout)
	defer cancel()
	d, err := newDemo(opts, out)
	if err != nil {
		return err
	}
	err = d.run(runCtx)
	d.shutdown()
	interrupted := ctx.Err() != nil && !errors.Is(context.Cause(runCtx), errTimeout)
	return d.finish(err, interrupted)
}

func newDemo(opts Options, out io.Writer) (*demo, error) {
	dir, err := os.MkdirTemp(opts.TempDir, "fleetcast-demo-")
	if err != nil {
		return nil, fmt.Errorf("create the demo directory: %w", err)
	}
	return &demo{opts: opts, out: out, tty: isTerminal(out), dir: dir, start: time.Now()}, nil
}

// run is the whole demo: set up, two releases, check the installed files.
func (d *demo) run(ctx context.Context) error {
	fmt.Fprintf(d.out, "fleetcast demo: %d agents and a release of %s on this machine, on loopback only\n",
		d.opts.Agents, units.FormatBytes(d.opts.Size))
	fmt.Fprintf(d.out, "directory %s (%s)\n", d.dir, map[bool]string{true: "kept at the end: --keep", false: "removed at the end"}[d.opts.Keep])
	steps := []func(context.Context) error{d.makeTrust, d.startOrigin, d.makeFleet, d.writeReleases, d.startAgents, d.waitForPeers,
		d.releaseStep(1), d.releaseStep(2), d.verifyInstalled}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return ctxErr(ctx, err)
		}
	}
	return nil
}

// ctxErr says why the demo stopped when its context ended.
func ctxErr(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), errTimeout) {
		return fmt.Errorf("%w: %w", errTimeout, err)
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
	if d.opts.Keep {
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
