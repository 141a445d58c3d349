// Command fleetcast publishes signed releases to an origin mirror and verifies
// them. Run "fleetcast help" for the commands.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

type command struct {
	name    string
	summary string
	run     func(args []string, env *cliEnv) error
}

var commands = []command{
	{"keygen", "create a signing key pair", cmdKeygen},
	{"root", "create, sign and publish trust roots (init | sign | publish)", cmdRoot},
	{"publish", "chunk, sign and publish a release to an origin mirror", cmdPublish},
	{"sign", "add a co-signature to a pending manifest", cmdSign},
	{"verify", "verify a signed manifest (and optionally an artifact) against a root", cmdVerify},
	{"agent", "run the update agent (foreground, or one cycle with --once)", cmdAgent},
	{"service", "install, start, stop or remove the agent as an OS service", runService},
	{"fleet-secret", "create a secret that closes a fleet to agents without it", cmdFleetSecret},
	{"status", "show the local agent: releases, update in progress, peers", cmdStatus},
	{"peers", "show a rollout across the LAN: every agent's status and a summary", cmdPeers},
	{"demo", "run a publisher, an origin and agents on this machine (loopback) and show a rollout", cmdDemo},
}

// cliEnv is what a command may touch besides its arguments.
type cliEnv struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// usageError makes the process exit with status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func main() {
	env := &cliEnv{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(run(os.Args[1:], env))
}

func run(args []string, env *cliEnv) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printHelp(env.stdout)
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			name := c.name
			if c.name == "root" && len(args) > 1 {
				name += " " + args[1] // "fleetcast root sign: ..."
			}
			return exitCode(c.run(args[1:], env), name, env.stderr)
		}
	}
	fmt.Fprintf(env.stderr, "fleetcast: unknown command %q\n\n", args[0])
	printHelp(env.stderr)
	return 2
}

func exitCode(err error, name string, stderr io.Writer) int {
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "fleetcast %s: %v\n", name, err)
		return 2
	case errors.Is(err, errFlagHelp):
		return 0
	default:
		fmt.Fprintf(stderr, "fleetcast %s: %v\n", name, err)
		return 1
	}
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "fleetcast distributes signed software releases to a fleet.\n\nUsage: fleetcast COMMAND [flags] [args]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun \"fleetcast COMMAND -h\" for a command's flags and an example.")
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }
