package service

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// trickyConfig has a path with a space and a percent sign, and arguments
// with every character systemd treats specially inside quotes.
func trickyConfig(exe string) Config {
	return Config{
		Name:        "fleetcast",
		DisplayName: "fleetcast update agent",
		Description: "fleetcast agent: 100% of updates, {verified}",
		Executable:  exe,
		Arguments:   []string{"agent", "--config", "/etc/fleet cast/agent.toml", `a"b`, `back\slash`, "$HOME", "${X}", "%n", "it's", ";", ""},
	}
}

func TestSystemdUnitContent(t *testing.T) {
	cfg := trickyConfig("/opt/fleet cast/100%/fleetcast")
	unit, err := SystemdUnit(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\nDescription=fleetcast agent: 100%% of updates, {verified}\n",
		"\nWants=network-online.target\n",
		"\nAfter=network-online.target\n",
		"\nExecStart=\"/opt/fleet cast/100%%/fleetcast\" \"agent\" \"--config\" \"/etc/fleet cast/agent.toml\" ",
		"\nRestart=always\n",
		"\nRestartSec=5s\n",
		"\nTimeoutStopSec=15s\n",
		"\nKillMode=mixed\n",
		"\n[Install]\nWantedBy=multi-user.target\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	if strings.Contains(unit, "ProtectSystem") || strings.Contains(unit, "NoNewPrivileges") {
		t.Errorf("unit has hardening that breaks installers:\n%s", unit)
	}
	argv := execStartArgv(t, unit)
	if want := append([]string{cfg.Executable}, cfg.Arguments...); !slices.Equal(argv, want) {
		t.Errorf("ExecStart decodes to\n%q\nwant\n%q", argv, want)
	}
}

// execStartArgv decodes ExecStart= the way systemd does for double-quoted
// words (systemd.service(5), "Command lines"): C-style escapes, "%%" for a
// percent, and "$$" for a dollar except in the executable path.
func execStartArgv(t *testing.T, unit string) []string {
	t.Helper()
	var line string
	for l := range strings.Lines(unit) {
		if s, ok := strings.CutPrefix(strings.TrimSuffix(l, "\n"), "ExecStart="); ok {
			line = s
		}
	}
	var argv []string
	for rest := line; rest != ""; {
		if rest[0] != '"' {
			t.Fatalf("ExecStart word not quoted at %q", rest)
		}
		var w strings.Builder
		i := 1
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] == '\\' {
				i++
			}
			w.WriteByte(rest[i])
		}
		word := strings.ReplaceAll(w.String(), "%%", "%")
		if len(argv) > 0 {
			word = strings.ReplaceAll(word, "$$", "$")
		}
		argv = append(argv, word)
		rest = strings.TrimPrefix(rest[i+1:], " ")
	}
	return argv
}

func TestSystemdUnitRefuses(t *testing.T) {
	for name, cfg := range map[string]Config{
		"bad name":           {Name: "fleet cast", Executable: "/bin/true"},
		"empty name":         {Executable: "/bin/true"},
		"quote in exe":       {Name: "f", Executable: `/opt/a"b/fleetcast`},
		"backslash in exe":   {Name: "f", Executable: `/opt/a\b/fleetcast`},
		"newline in arg":     {Name: "f", Executable: "/bin/true", Arguments: []string{"a\n[Service]\nExecStartPre=/bin/sh"}},
		"newline in desc":    {Name: "f", Executable: "/bin/true", Description: "a\nb"},
		"continued desc":     {Name: "f", Executable: "/bin/true", Description: `a\`},
		"template in arg":    {Name: "f", Executable: "/bin/true", Arguments: []string{"{{Name}}"}},
		"template in desc":   {Name: "f", Executable: "/bin/true", Description: "{{"},
		"name too long (65)": {Name: strings.Repeat("a", 65), Executable: "/bin/true"},
	} {
		if unit, err := SystemdUnit(cfg); err == nil {
			t.Errorf("%s: rendered\n%s", name, unit)
		}
	}
}

func TestSystemdUnitDefaults(t *testing.T) {
	unit, err := SystemdUnit(Config{Name: "fleetcast-b", Arguments: []string{"agent"}})
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	argv := execStartArgv(t, unit)
	if argv[0] != exe || !filepath.IsAbs(argv[0]) || !slices.Equal(argv[1:], []string{"agent"}) {
		t.Errorf("ExecStart argv %q, want [%s agent]", argv, exe)
	}
	if !strings.Contains(unit, "\nDescription=fleetcast-b\n") {
		t.Errorf("description does not default to the name:\n%s", unit)
	}
}

// TestSystemdAnalyzeVerify has systemd itself check the unit, including that
// the quoted executable path (with a space and a percent sign) resolves.
func TestSystemdAnalyzeVerify(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("systemd units are for Linux")
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("FLEETCAST_REQUIRE_SYSTEMD") == "1" {
			t.Fatal("FLEETCAST_REQUIRE_SYSTEMD=1 but systemd-analyze is missing (Debian package systemd)")
		}
		t.Skip("systemd-analyze not found (Debian package systemd); set FLEETCAST_REQUIRE_SYSTEMD=1 to make this a failure")
	}
	dir := t.TempDir()
	exe := filepath.Join(dir, "bin dir 100%", "fleetcast")
	if err := os.MkdirAll(filepath.Dir(exe), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	unit, err := SystemdUnit(trickyConfig(exe))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "fleetcast.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	// Without a running systemd (a container) verify may warn about the
	// host; only lines about this unit count, and any of them is a finding
	// (unknown keys are warnings with exit status 0).
	var about []string
	for l := range strings.Lines(string(out)) {
		if strings.Contains(l, "fleetcast.service") || strings.Contains(l, exe) {
			about = append(about, l)
		}
	}
	if err != nil || len(about) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s\nunit:\n%s", err, out, unit)
	}

	// The check can fail: a unit naming a missing executable is refused.
	if err := os.Remove(exe); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", path).CombinedOutput(); err == nil {
		t.Errorf("systemd-analyze verify accepted a missing executable:\n%s", out)
	}
}
