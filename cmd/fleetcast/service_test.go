package main

import (
	"bytes"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// These cases all fail before anything talks to the service manager, so
// they are safe to run as root on a machine with systemd.
func TestServiceUsage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "agent.toml")
	for _, tc := range []struct {
		args   []string
		exit   int
		stderr string
	}{
		{nil, 2, "want an action: install, uninstall, start, stop, restart, status"},
		{[]string{"--name", "a"}, 2, "want an action"},
		{[]string{"frobnicate"}, 2, `unknown action "frobnicate"`},
		{[]string{"install"}, 2, "install needs --config FILE"},
		{[]string{"--name", "b", "install"}, 2, "install needs --config FILE"},
		{[]string{"start", "--config", "agent.toml"}, 2, "--config is only for install"},
		{[]string{"--config", "agent.toml", "restart"}, 2, "--config is only for install"},
		{[]string{"stop", "now"}, 2, `unexpected arguments after stop: ["now"]`},
		{[]string{"status", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"install", "--config", missing}, 1, "fleetcast service: install fleetcast: config: open " + missing},
	} {
		var stdout, stderr bytes.Buffer
		exit := cmdService(tc.args, &stdout, &stderr)
		if exit != tc.exit || !strings.Contains(stderr.String(), tc.stderr) || stdout.Len() != 0 {
			t.Errorf("fleetcast service %q: exit %d, stdout %q, stderr %q; want exit %d, stderr containing %q",
				tc.args, exit, stdout.String(), stderr.String(), tc.exit, tc.stderr)
		}
	}
}

func TestServiceHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if exit := cmdService([]string{"-h"}, &stdout, &stderr); exit != 0 {
		t.Errorf("service -h: exit %d", exit)
	}
	for _, want := range []string{"Usage: fleetcast service install|uninstall|start|stop|restart|status", "Example: sudo fleetcast service install --config", "-name"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("service -h lacks %q:\n%s", want, stderr.String())
		}
	}
}

// cmdService runs "fleetcast service ARGS" through the command dispatcher.
func cmdService(args []string, stdout, stderr io.Writer) int {
	env := &cliEnv{stdin: strings.NewReader(""), stdout: stdout, stderr: stderr, getenv: func(string) string { return "" }}
	return run(append([]string{"service"}, args...), env)
}
