package service

import (
	"fmt"
	"strings"
)

// systemdTemplate is the unit Control installs on Linux. The @KEY@ markers
// are replaced by escaped values in one pass.
//
// Restart=always with a short RestartSec and no start rate limit: the agent
// is how fixes arrive, so it must come back after a crash, a bad config being
// repaired, or its own exit after replacing its binary (exit 0 included).
//
// KillMode=mixed: SIGTERM goes to the agent alone, so an installer it is
// running is not interrupted halfway while the agent stops (service.Run gives
// it the agent's stop timeout); TimeoutStopSec later, whatever is left in the
// unit (a hung installer included) gets SIGKILL.
//
// Hardening is deliberately modest. The agent installs updates to whatever
// targets the releases name (/opt, /usr/local, /usr, /etc, /home, package
// managers, service restarts), so ProtectSystem=, ProtectHome=, ReadOnlyPaths=,
// PrivateTmp= and ProtectKernel*= would break installs. NoNewPrivileges= and
// RestrictSUIDSGID= are also left out: they block setuid helpers, SELinux
// transitions of package scriptlets and installing setuid files. What remains
// costs an installer nothing.
const systemdTemplate = `# Installed by "fleetcast service install"; uninstall and install again to
# change it, or add a drop-in with "systemctl edit @NAME@".
[Unit]
Description=@DESCRIPTION@
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=0

[Service]
Type=simple
ExecStart=@EXECSTART@
Restart=always
RestartSec=` + restartDelay + `
TimeoutStopSec=` + stopTimeout + `
KillMode=mixed
UMask=0022
LockPersonality=yes
RestrictRealtime=yes

[Install]
WantedBy=multi-user.target
`

// SystemdUnit renders the systemd unit file content that Control(cfg,
// "install") writes on Linux, to /etc/systemd/system/NAME.service.
func SystemdUnit(cfg Config) (string, error) {
	cfg, err := withDefaults(cfg)
	if err != nil {
		return "", err
	}
	execStart, err := systemdCommandLine(cfg.Executable, cfg.Arguments)
	if err != nil {
		return "", fmt.Errorf("systemd unit for %s: %w", cfg.Name, err)
	}
	desc, err := systemdDescription(cfg.Description)
	if err != nil {
		return "", fmt.Errorf("systemd unit for %s: %w", cfg.Name, err)
	}
	unit := strings.NewReplacer(
		"@NAME@", cfg.Name,
		"@DESCRIPTION@", desc,
		"@EXECSTART@", execStart,
	).Replace(systemdTemplate)
	if strings.Contains(unit, "{{") {
		// kardianos would read it as a template action (see kardianosConfig).
		return "", fmt.Errorf("systemd unit for %s: the description, executable or arguments contain \"{{\"", cfg.Name)
	}
	return unit, nil
}

// systemdCommandLine quotes each word for ExecStart=: inside double quotes,
// backslash and quote are escaped C-style, "%" (specifiers) is doubled, and in
// the arguments "$" (variable expansion) is doubled too; systemd does not
// expand variables in the executable path, and refuses a path containing a
// quote or backslash.
func systemdCommandLine(exe string, args []string) (string, error) {
	if strings.ContainsAny(exe, `"'\`) || hasControl(exe) {
		return "", fmt.Errorf("executable %q: systemd refuses paths with quotes, backslashes or control characters", exe)
	}
	words := []string{systemdQuote(exe, false)}
	for _, a := range args {
		if hasControl(a) {
			return "", fmt.Errorf("argument %q contains a control character", a)
		}
		words = append(words, systemdQuote(a, true))
	}
	return strings.Join(words, " "), nil
}

var (
	systemdPercentEscaper = strings.NewReplacer(`%`, `%%`)
	systemdArgEscaper     = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `%`, `%%`, `$`, `$$`)
)

func systemdQuote(s string, arg bool) string {
	if arg {
		return `"` + systemdArgEscaper.Replace(s) + `"`
	}
	return `"` + systemdPercentEscaper.Replace(s) + `"`
}

// systemdDescription escapes specifiers; a trailing backslash would continue
// the line.
func systemdDescription(s string) (string, error) {
	if hasControl(s) || strings.HasSuffix(s, `\`) {
		return "", fmt.Errorf("description %q: control character or trailing backslash", s)
	}
	return systemdPercentEscaper.Replace(s), nil
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}
