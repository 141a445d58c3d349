package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fleetcast/fleetcast/agent/config"
	"github.com/fleetcast/fleetcast/agent/service"
)

// serviceActions are the verbs of "fleetcast service"; all but status go to
// service.Control.
var serviceActions = []string{"install", "uninstall", "start", "stop", "restart", "status"}

const serviceUsage = `fleetcast service install|uninstall|start|stop|restart|status [--name NAME] [--config FILE]

install registers "fleetcast agent --config FILE" (FILE made absolute, this
binary's path) with the service manager (systemd, launchd, Windows SCM) to
start at boot and restart after failures; it does not start it. All actions
but status need root (an elevated prompt on Windows). docs/SERVICE.md has more.

Example: sudo fleetcast service install --config /etc/fleetcast/agent.toml && sudo fleetcast service start`

// runService runs "fleetcast service ARGS".
func runService(args []string, env *cliEnv) error {
	fset := newFlagSet("service", serviceUsage, env.stderr)
	name := fset.String("name", "fleetcast", "service name; give each agent on a host its own")
	configPath := fset.String("config", "", "agent configuration file (install only)")
	action, err := parseServiceArgs(fset, args)
	if err != nil {
		return err
	}
	switch {
	case action == "install" && *configPath == "":
		return usagef("install needs --config FILE")
	case action != "install" && *configPath != "":
		return usagef("--config is only for install: the installed service keeps the file it was installed with (uninstall and install again to change it)")
	}
	cfg := service.Config{
		Name:        *name,
		DisplayName: "fleetcast update agent",
		Description: "fleetcast agent: downloads, verifies and installs signed software releases",
	}
	if *name != "fleetcast" {
		cfg.DisplayName += " (" + *name + ")"
	}
	switch action {
	case "status":
		st, err := service.Status(cfg)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "%s: %s\n", *name, st)
		return nil
	case "install":
		return installService(env, cfg, *configPath)
	}
	if err := service.Control(cfg, action); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s service %s\n", pastTense(action), *name)
	return nil
}

// parseServiceArgs parses flags before and after the action and returns the
// action.
func parseServiceArgs(fset *flag.FlagSet, args []string) (string, error) {
	var action string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		action, args = args[0], args[1:]
	}
	if err := parse(fset, args); err != nil {
		return "", err
	}
	if action == "" && fset.NArg() > 0 {
		action = fset.Arg(0)
		if err := parse(fset, fset.Args()[1:]); err != nil {
			return "", err
		}
	}
	switch {
	case action == "":
		return "", usagef("want an action: %s", strings.Join(serviceActions, ", "))
	case !slices.Contains(serviceActions, action):
		return "", usagef("unknown action %q: want %s", action, strings.Join(serviceActions, ", "))
	case fset.NArg() > 0:
		return "", usagef("unexpected arguments after %s: %q", action, fset.Args())
	}
	return action, nil
}

func installService(env *cliEnv, cfg service.Config, configPath string) error {
	abs, err := filepath.Abs(configPath)
	if err != nil {
		return fmt.Errorf("install %s: config: %w", cfg.Name, err)
	}
	// Refuse a config the agent would refuse at every start (and restart).
	if _, err := config.Load(abs); err != nil {
		return fmt.Errorf("install %s: %w (not installed)", cfg.Name, err)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("install %s: find this program's path: %w", cfg.Name, err)
	}
	cfg.Executable = exe
	cfg.Arguments = []string{"agent", "--config", abs}
	if err := service.Control(cfg, "install"); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "installed service %s: %s %s\n", cfg.Name, exe, strings.Join(cfg.Arguments, " "))
	start := "fleetcast service start"
	if cfg.Name != "fleetcast" {
		start += " --name " + cfg.Name
	}
	fmt.Fprintf(env.stdout, "start it with: %s\n", start)
	return nil
}

func pastTense(action string) string {
	switch action {
	case "stop":
		return "stopped"
	case "uninstall":
		return "uninstalled"
	}
	return action + "ed" // started, restarted
}
