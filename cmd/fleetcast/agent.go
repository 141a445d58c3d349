package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fleetcast/fleetcast/agent"
	"github.com/fleetcast/fleetcast/agent/service"
)

// stopTimeout is how long a stopping agent may take to finish; the update
// cycle stops at once, an install step in progress finishes first.
const stopTimeout = 10 * time.Second

func cmdAgent(args []string, env *cliEnv) error {
	fset := newFlagSet("agent", "fleetcast agent --config FILE [--once] [--log-format text|json] [--log-level info]\n\n"+
		"Runs the update agent in the foreground (or under the service manager: see \"fleetcast service\").\n"+
		"Example: fleetcast agent --config /etc/fleetcast/agent.toml --once", env.stderr)
	configPath := fset.String("config", "", "agent configuration file (TOML, docs/CONFIG.md)")
	once := fset.Bool("once", false, "run one update cycle for every subscription and exit: 0 when all are up to date or updated")
	logFormat := fset.String("log-format", "text", "log format: text or json")
	logLevel := fset.String("log-level", "info", "log level: debug, info, warn or error")
	if err := parse(fset, args); err != nil {
		return err
	}
	if *configPath == "" || fset.NArg() != 0 {
		return usagef("want --config FILE and no arguments")
	}
	log, err := newLogger(env.stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	a, err := agent.NewFromFile(*configPath, log)
	if err != nil {
		return err
	}
	defer a.Close()
	if *once {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return a.Once(ctx)
	}
	return service.Run(a.Run, stopTimeout, log)
}

// newLogger makes the agent's slog logger.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("--log-format %q: want text or json", format)
}
