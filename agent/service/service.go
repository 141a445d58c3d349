// Package service runs the fleetcast agent as an operating-system service:
// it installs, removes, starts and stops it through the platform's service
// manager (systemd on Linux, launchd on macOS, the Service Control Manager on
// Windows) and runs it until the manager or a signal asks it to stop.
//
// It is the only package that imports github.com/kardianos/service. Control
// and Status go through kardianos; the systemd unit is rendered here (see
// SystemdUnit) and handed to kardianos verbatim, so what is installed is what
// SystemdUnit returns. Run does not use kardianos's Service.Run: on Windows
// that loop only ends when the service manager sends stop, so an agent that
// fails could not end its service, and it always reports exit code 0, which
// hides failures from the recovery actions; elsewhere it is only a wait for
// SIGTERM or SIGINT, which Run does itself.
package service

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"

	kservice "github.com/kardianos/service"
)

// Config names the service.
type Config struct {
	Name        string // "fleetcast"; also the systemd unit, launchd label and Windows service name
	DisplayName string // default Name
	Description string // default DisplayName
	Executable  string // absolute path of the fleetcast binary (default os.Executable())
	// Arguments follow the executable, e.g. ["agent", "--config",
	// "/etc/fleetcast/agent.toml"]; the caller makes paths absolute.
	Arguments []string
}

// Results of Status.
const (
	StatusRunning      = "running"
	StatusStopped      = "stopped"
	StatusNotInstalled = "not installed"
)

// actions are what Control accepts.
var actions = []string{"install", "uninstall", "start", "stop", "restart"}

// Restart and stop policy, the same on every platform where it can be set.
const (
	restartDelay = "5s"  // wait before restarting after the agent exits or crashes
	stopTimeout  = "15s" // the manager kills the agent this long after asking it to stop
)

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Control performs "install", "uninstall", "start", "stop" or "restart"
// through the platform's service manager. It needs root (Administrator on
// Windows). Install does not start the service; uninstall stops it first.
func Control(cfg Config, action string) error {
	if !slices.Contains(actions, action) {
		return fmt.Errorf("unknown action %q: want one of %s", action, strings.Join(actions, ", "))
	}
	cfg, err := withDefaults(cfg)
	if err != nil {
		return err
	}
	s, err := newService(cfg)
	if err != nil {
		return err
	}
	if err := checkPrivileges(); err != nil {
		return fmt.Errorf("%s %s: %w", action, cfg.Name, err)
	}
	if err := control(s, cfg, action); err != nil {
		return fmt.Errorf("%s %s via %s: %w%s", action, cfg.Name, s.Platform(), err, hint(s.Platform(), cfg.Name))
	}
	return nil
}

func control(s kservice.Service, cfg Config, action string) error {
	st, stErr := s.Status()
	installed := !errors.Is(stErr, kservice.ErrNotInstalled)
	switch {
	case action == "install" && stErr == nil:
		return errors.New("already installed; to change its settings, uninstall it and install again")
	case action == "install":
		if err := checkExecutable(cfg.Executable); err != nil {
			return err
		}
		if err := s.Install(); err != nil {
			return err
		}
		return afterInstall(cfg.Name)
	case !installed:
		return errors.New(StatusNotInstalled)
	case action == "uninstall":
		if stErr == nil && st == kservice.StatusRunning {
			if err := s.Stop(); err != nil {
				return fmt.Errorf("stop before uninstalling: %w", err)
			}
		}
		return s.Uninstall()
	case action == "start":
		return s.Start()
	case action == "stop":
		return s.Stop()
	default:
		return s.Restart()
	}
}

// Status returns StatusRunning, StatusStopped or StatusNotInstalled.
func Status(cfg Config) (string, error) {
	s, err := newService(cfg)
	if err != nil {
		return "", err
	}
	st, err := s.Status()
	switch {
	case errors.Is(err, kservice.ErrNotInstalled):
		return StatusNotInstalled, nil
	case err != nil:
		return "", fmt.Errorf("status of %s via %s: %w%s", cfg.Name, s.Platform(), err, hint(s.Platform(), cfg.Name))
	case st == kservice.StatusRunning:
		return StatusRunning, nil
	case st == kservice.StatusStopped:
		return StatusStopped, nil
	}
	return "", fmt.Errorf("status of %s via %s: unknown", cfg.Name, s.Platform())
}

// newService fills in cfg's defaults and makes the kardianos service, with
// the restart policy of each platform set in its options.
func newService(cfg Config) (kservice.Service, error) {
	kc, err := kardianosConfig(cfg)
	if err != nil {
		return nil, err
	}
	s, err := kservice.New(nil, kc)
	if err != nil {
		return nil, fmt.Errorf("service %s: %w: %v", cfg.Name, errors.ErrUnsupported, err)
	}
	if !slices.Contains(supportedPlatforms, s.Platform()) {
		return nil, fmt.Errorf("service %s: %w: the service manager here is %s; fleetcast sets up systemd, launchd and Windows services (is systemd running? In a container, run \"fleetcast agent\" in the foreground instead)",
			cfg.Name, errors.ErrUnsupported, s.Platform())
	}
	return s, nil
}

// supportedPlatforms are the kardianos backends whose service definition
// carries the restart and stop policy documented in docs/SERVICE.md. The
// others (SysV, Upstart, OpenRC, BSD rc, ...) would install a service that
// is not restarted after a failure.
var supportedPlatforms = []string{"linux-systemd", "darwin-launchd", "windows-service"}

func kardianosConfig(cfg Config) (*kservice.Config, error) {
	cfg, err := withDefaults(cfg)
	if err != nil {
		return nil, err
	}
	opts := kservice.KeyValue{
		// launchd: start at boot and restart whenever it exits.
		"RunAtLoad": true,
		"KeepAlive": true,
		// Windows: start automatically once boot has settled (as systemd's
		// After=network-online.target does), restart after a failure.
		"StartType":              "automatic",
		"DelayedAutoStart":       true,
		"OnFailure":              "restart",
		"OnFailureDelayDuration": restartDelay,
		"OnFailureResetPeriod":   60,
	}
	if runtime.GOOS == "linux" {
		unit, err := SystemdUnit(cfg)
		if err != nil {
			return nil, err
		}
		// A fully rendered unit: kardianos's template engine copies text
		// without {{ actions through unchanged (SystemdUnit refuses {{).
		opts["SystemdScript"] = unit
	}
	return &kservice.Config{
		Name:        cfg.Name,
		DisplayName: cfg.DisplayName,
		Description: cfg.Description,
		Executable:  cfg.Executable,
		Arguments:   cfg.Arguments,
		Option:      opts,
	}, nil
}

func withDefaults(cfg Config) (Config, error) {
	if !validName.MatchString(cfg.Name) {
		return cfg, fmt.Errorf("service name %q: want 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", cfg.Name)
	}
	if cfg.DisplayName == "" {
		cfg.DisplayName = cfg.Name
	}
	if cfg.Description == "" {
		cfg.Description = cfg.DisplayName
	}
	if cfg.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return cfg, fmt.Errorf("service %s: find this program's path: %w", cfg.Name, err)
		}
		cfg.Executable = exe
	}
	exe, err := filepath.Abs(cfg.Executable)
	if err != nil {
		return cfg, fmt.Errorf("service %s: executable: %w", cfg.Name, err)
	}
	cfg.Executable = exe
	cfg.Arguments = slices.Clone(cfg.Arguments)
	return cfg, nil
}

// checkExecutable refuses to install a service whose program is missing.
func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("executable: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("executable %s: not a regular file", path)
	}
	return nil
}

// errPrivileges is what Control returns when not run as root/Administrator.
func errPrivileges(who string) error {
	return fmt.Errorf("%w: run as %s", fs.ErrPermission, who)
}

// hint tells the operator where the service manager keeps the details that
// its command-line tools print but kardianos does not pass on.
func hint(platform, name string) string {
	switch platform {
	case "linux-systemd":
		return fmt.Sprintf(" (details: systemctl status %s; journalctl -u %s)", name, name)
	case "darwin-launchd":
		return fmt.Sprintf(" (details: launchctl list %s; /var/log/%s.err.log)", name, name)
	case "windows-service":
		return fmt.Sprintf(" (details: sc.exe query %s; Event Viewer, Windows Logs > System)", name)
	}
	return ""
}
