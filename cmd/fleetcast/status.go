package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/fleetcast/fleetcast/agent/config"
	"github.com/fleetcast/fleetcast/agent/fleettls"
	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/agent/statusclient"
)

// clearScreen moves the cursor home and clears the terminal (--watch on a TTY).
const clearScreen = "\x1b[H\x1b[2J"

func cmdStatus(args []string, env *cliEnv) error {
	fset := newFlagSet("status", "fleetcast status [--config FILE | --addr HOST:PORT] [--json] [--watch [--interval 1s]]\n\n"+
		"Shows the local agent: installed releases, the update in progress, the last transfer, the peers.\n"+
		"--watch redraws every --interval until Ctrl-C; an agent that stops answering is reported and retried.\n"+
		"Example: fleetcast status --config /etc/fleetcast/agent.toml --watch", env.stderr)
	tf := addTargetFlags(fset)
	asJSON := fset.Bool("json", false, "print the agent's status as JSON (one line per sample with --watch)")
	watch := fset.Bool("watch", false, "redraw until Ctrl-C")
	interval := fset.Duration("interval", time.Second, "time between samples with --watch")
	if err := parse(fset, args); err != nil {
		return err
	}
	if fset.NArg() != 0 || *interval <= 0 {
		return usagef("want no arguments and a positive --interval")
	}
	addr, client, err := tf.resolve()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := statusOutput{w: env.stdout, json: *asJSON, tty: isTerminal(env.stdout)}
	if *watch {
		return watchStatus(ctx, client, addr, *interval, out)
	}
	st, err := statusclient.Fetch(ctx, client, addr)
	if err != nil {
		return hintAgent(err)
	}
	return out.show(st, nil)
}

// targetFlags are the flags naming the agent: --config and --addr.
type targetFlags struct{ config, addr *string }

func addTargetFlags(fset *flag.FlagSet) targetFlags {
	return targetFlags{
		config: fset.String("config", "", "agent configuration file: its listen address and fleet secret (default "+defaultConfigPath()+")"),
		addr:   fset.String("addr", "", "agent address HOST:PORT; alone, without --config, tries https and falls back to http"),
	}
}

// resolve returns the agent's address and a client for it: from --addr
// alone, a probing client; else the config's listen address (unless --addr)
// and fleet secret.
func (tf targetFlags) resolve() (string, *statusclient.Client, error) {
	if *tf.addr != "" && *tf.config == "" {
		return *tf.addr, statusclient.NewProbing(), nil
	}
	path := *tf.config
	if path == "" {
		path = defaultConfigPath()
	}
	cfg, err := config.Load(path)
	if err != nil {
		return "", nil, fmt.Errorf("%w; give --config FILE or --addr HOST:PORT", err)
	}
	addr := *tf.addr
	if addr == "" {
		if addr, err = dialAddr(cfg.Listen); err != nil {
			return "", nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	fleet, err := fleettls.Load(cfg.FleetSecretFile)
	if err != nil {
		return "", nil, fmt.Errorf("%w (the status is public: --addr %s alone reads it without the secret)", err, addr)
	}
	return addr, statusclient.New(fleet), nil
}

// defaultConfigPath is where the agent's configuration lives by convention
// (the path in fleetcast agent's and fleetcast service's examples).
func defaultConfigPath() string {
	if runtime.GOOS == "windows" {
		if d := os.Getenv("ProgramData"); filepath.IsAbs(d) {
			return filepath.Join(d, "fleetcast", "agent.toml")
		}
		return `C:\ProgramData\fleetcast\agent.toml`
	}
	return "/etc/fleetcast/agent.toml"
}

// dialAddr turns the agent's listen address into one to connect to: an
// unspecified host (":7331", "0.0.0.0:7331", "[::]:7331") is loopback.
func dialAddr(listen string) (string, error) {
	if listen == "" {
		return "", errors.New(`listen is "": the agent's status API is disabled`)
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("listen %q: %w", listen, err)
	}
	if port == "0" {
		return "", fmt.Errorf("listen %q picks a free port at each start: give --addr HOST:PORT", listen)
	}
	switch ip := net.ParseIP(host); {
	case host == "" || ip != nil && ip.To4() != nil && ip.IsUnspecified():
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified():
		host = "::1"
	}
	return net.JoinHostPort(host, port), nil
}

// hintAgent adds what to check when the agent does not answer at all.
func hintAgent(err error) error {
	if errors.Is(err, statusclient.ErrUnreachable) {
		return fmt.Errorf("%w; is `fleetcast agent` running?", err)
	}
	return err
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// statusOutput prints samples of an agent's status.
type statusOutput struct {
	w    io.Writer
	json bool // JSON, indented, or one line per sample when watching
	tty  bool // a terminal: bars, and --watch redraws in place
}

// show prints st; rates are bytes/s per subscription measured by --watch
// (nil for one sample).
func (o statusOutput) show(st peerproto.Status, rates map[string]float64) error {
	if o.json {
		enc := json.NewEncoder(o.w)
		if rates == nil {
			enc.SetIndent("", "  ")
		}
		return enc.Encode(st)
	}
	_, err := io.WriteString(o.w, formatStatus(st, time.Now(), rates, o.tty))
	return err
}

// watchStatus shows the agent's status every interval until ctx ends.
func watchStatus(ctx context.Context, client *statusclient.Client, addr string, interval time.Duration, o statusOutput) error {
	var prev map[string]sample
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		st, err := statusclient.Fetch(ctx, client, addr)
		if ctx.Err() != nil {
			return nil // Ctrl-C
		}
		if o.tty && !o.json {
			io.WriteString(o.w, clearScreen)
		}
		var rates map[string]float64
		if err != nil {
			fmt.Fprintf(o.w, "%s: %v (retrying every %s)\n", time.Now().Format(time.TimeOnly), hintAgent(err), interval)
		} else {
			rates, prev = sampleRates(prev, st, time.Now())
			if err := o.show(st, rates); err != nil {
				return err
			}
		}
		if !o.tty && !o.json {
			fmt.Fprintln(o.w)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// sample is what --watch keeps of an update in progress to measure its rate.
type sample struct {
	seq   uint64
	moved int64 // bytes fetched from peers and the origin
	at    time.Time
}

// sampleRates measures, for each update in progress also in prev, the bytes
// fetched per second since prev; it returns the rates and the new samples.
func sampleRates(prev map[string]sample, st peerproto.Status, now time.Time) (map[string]float64, map[string]sample) {
	rates, next := map[string]float64{}, map[string]sample{}
	for _, s := range st.Subscriptions {
		p := s.Progress
		if p == nil {
			continue
		}
		k := subKey(s)
		cur := sample{seq: p.Sequence, moved: p.PeerBytes + p.OriginBytes, at: now}
		if old, ok := prev[k]; ok && old.seq == cur.seq && cur.at.After(old.at) && cur.moved >= old.moved {
			rates[k] = float64(cur.moved-old.moved) / cur.at.Sub(old.at).Seconds()
		}
		next[k] = cur
	}
	return rates, next
}

func subKey(s peerproto.SubscriptionStatus) string { return s.Product + "/" + s.Channel }
