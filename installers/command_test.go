package installers

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/internal/testlog"
	"github.com/fleetcast/fleetcast/manifest"
)

// dumpArgs returns an argv that writes its arguments after the first four,
// one per line, to out. The shell is the program run; the arguments reach
// it as argv, not as shell text.
func dumpArgs(t *testing.T, out string, args ...string) []string {
	return append([]string{lookPath(t, "sh"), "-c", `printf '%s\n' "$@" > "$0"`, out}, args...)
}

func TestCommandArgv(t *testing.T) {
	dir := t.TempDir()
	out, marker := filepath.Join(dir, "args"), filepath.Join(dir, "marker")
	tests := []struct {
		name string
		argv []string
		want []string
	}{
		{"placeholders", []string{"{artifact}", "--version={version}", "{version}{artifact}"},
			[]string{"ARTIFACT", "--version=2.0", "2.0ARTIFACT"}},
		{"shell syntax is literal", []string{"a; touch " + marker, "$(touch " + marker + ")", "`touch " + marker + "`", "*"},
			[]string{"a; touch " + marker, "$(touch " + marker + ")", "`touch " + marker + "`", "*"}},
		{"placeholder in replacement not expanded", []string{"{artifact}"}, []string{"ARTIFACT"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rel := release(t, dir, 2, "2.0", []byte("pkg"), manifest.Install{Installer: "command", Command: dumpArgs(t, out, tc.argv...)})
			if _, err := Install(context.Background(), request(t, rel, nil, t.TempDir())); err != nil {
				t.Fatal(err)
			}
			got := strings.Split(strings.TrimSuffix(readFile(t, out), "\n"), "\n")
			for i := range tc.want {
				tc.want[i] = strings.ReplaceAll(tc.want[i], "ARTIFACT", rel.Artifact)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("arguments %q, want %q", got, tc.want)
			}
			if exists(marker) {
				t.Error("a shell interpreted an argument")
			}
		})
	}
}

// TestCommandNoShell runs a program name holding shell syntax: without a
// shell it is just a name that does not exist.
func TestCommandNoShell(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	rel := release(t, dir, 1, "1.0", nil, manifest.Install{Installer: "command",
		Command: []string{"true; touch " + marker}})
	_, err := Install(context.Background(), request(t, rel, nil, dir))
	if err == nil || !strings.Contains(err.Error(), "could not run") {
		t.Fatalf("Install: %v, want a command that could not run", err)
	}
	if exists(marker) {
		t.Fatal("the command line went through a shell")
	}
}

func TestCommandFailures(t *testing.T) {
	sh := lookPath(t, "sh")
	tests := []struct {
		name       string
		command    []string
		rollback   []string // {out} is replaced by the rollback output file
		health     []string
		timeout    time.Duration
		wantStep   string
		wantHealth bool
		wantRB     bool
		wantErr    string
		wantRBOut  string // what the rollback command wrote
		wantLog    string
	}{
		{name: "exit status and output", command: []string{sh, "-c", "echo preparing; echo disk full >&2; exit 3"},
			wantStep: stepInstall, wantErr: `failed (exit status 3); last output line: "disk full"; the manifest has no rollback command`, wantLog: "preparing"},
		{name: "install failure runs rollback", command: []string{sh, "-c", "exit 1"},
			rollback: []string{sh, "-c", `echo "$1 $2" > "$0"`, "{out}", "{artifact}", "{version}"},
			wantStep: stepInstall, wantRB: true, wantRBOut: "PREV 1.0"},
		{name: "health check fails, rollback runs", command: []string{"true"}, health: []string{sh, "-c", "exit 1"},
			rollback: []string{sh, "-c", `echo "$1 $2" > "$0"`, "{out}", "{artifact}", "{version}"},
			wantStep: stepHealthCheck, wantHealth: true, wantRB: true, wantRBOut: "PREV 1.0"},
		{name: "health check fails, no rollback command", command: []string{"true"}, health: []string{"false"},
			wantStep: stepHealthCheck, wantHealth: true, wantErr: "no rollback command"},
		{name: "health check fails, rollback fails", command: []string{"true"}, health: []string{"false"},
			rollback: []string{"false"}, wantStep: stepHealthCheck, wantHealth: true, wantErr: "rollback failed"},
		{name: "health check times out", command: []string{"true"}, health: []string{sh, "-c", "sleep 60"},
			timeout: 200 * time.Millisecond, wantStep: stepHealthCheck, wantHealth: true, wantErr: "still running after 200ms"},
		{name: "health check cannot start", command: []string{"true"}, health: []string{"/nonexistent/check"},
			wantStep: stepHealthCheck, wantHealth: true, wantErr: "could not run"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lookPath(t, "true")
			dir := t.TempDir()
			rbOut := filepath.Join(dir, "rollback-out")
			rollback := substitute(tc.rollback, "{artifact}", "{version}")
			for i, a := range rollback {
				rollback[i] = strings.ReplaceAll(a, "{out}", rbOut)
			}
			prev := release(t, dir, 1, "1.0", []byte("old"), manifest.Install{Installer: "command", Command: []string{"true"}})
			rel := release(t, dir, 2, "2.0", []byte("new"), manifest.Install{Installer: "command",
				Command: tc.command, HealthCheck: tc.health, RollbackCommand: rollback})
			var logs testlog.Buffer
			req := request(t, rel, &prev, dir)
			req.Log = slog.New(slog.NewTextHandler(&logs, nil))
			req.HealthTimeout, req.CommandTimeout = tc.timeout, tc.timeout
			_, err := Install(context.Background(), req)
			ie := asError(t, err)
			if ie.Step != tc.wantStep || ie.RolledBack != tc.wantRB || errors.Is(err, ErrHealthCheck) != tc.wantHealth {
				t.Errorf("error %v: step %q rolled back %v; want %q %v, health failure %v", err, ie.Step, ie.RolledBack, tc.wantStep, tc.wantRB, tc.wantHealth)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not say %q", err, tc.wantErr)
			}
			wantRBOut := "<absent>"
			if tc.wantRBOut != "" {
				wantRBOut = strings.ReplaceAll(tc.wantRBOut, "PREV", prev.Artifact) + "\n"
			}
			if got := readFile(t, rbOut); got != wantRBOut {
				t.Errorf("rollback command wrote %q, want %q", got, wantRBOut)
			}
			if !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log does not hold %q:\n%s", tc.wantLog, logs.String())
			}
		})
	}
}

func TestTailBuffer(t *testing.T) {
	tests := []struct {
		writes []string
		max    int
		want   string
		last   string
	}{
		{[]string{"a\n", "b\n"}, 10, "a\nb\n", `; last output line: "b"`},
		{[]string{"0123456789", "abcdef"}, 8, "[earlier output dropped]...89abcdef", `; last output line: "0123456789abcdef"`},
		{[]string{strings.Repeat("x", 40)}, 8, "[earlier output dropped]...xxxxxxxx", `; last output line: "xxxxxxxx"`},
		{nil, 8, "", ""},
	}
	for i, tc := range tests {
		tb := &tailBuffer{max: tc.max}
		for _, w := range tc.writes {
			tb.Write([]byte(w))
		}
		if got := tb.String(); got != tc.want {
			t.Errorf("%d: String() = %q, want %q", i, got, tc.want)
		}
		if got := tb.lastLine(); got != tc.last {
			t.Errorf("%d: lastLine() = %q, want %q", i, got, tc.last)
		}
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	art := writeFile(t, filepath.Join(dir, "a"), nil, 0o644)
	good := Release{Sequence: 1, Version: "1.0", Artifact: art, Install: manifest.Install{Installer: "command", Command: []string{"true"}}}
	tests := []struct {
		name   string
		change func(r *Request)
		want   string
	}{
		{"bad version", func(r *Request) { r.New.Version = "../1" }, "not a valid manifest version"},
		{"relative artifact", func(r *Request) { r.New.Artifact = "a" }, "not absolute"},
		{"bad installer", func(r *Request) { r.New.Install.Installer = "script" }, "install instructions"},
		{"bad previous", func(r *Request) { p := good; p.Version = ""; r.Previous = &p }, "previous release"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := request(t, good, nil, dir)
			tc.change(req)
			_, err := Install(context.Background(), req)
			if ie := asError(t, err); ie.Step != stepValidate || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Install: %v, want a validation error saying %q", err, tc.want)
			}
		})
	}
	if _, err := Install(context.Background(), nil); err == nil {
		t.Fatal("nil request accepted")
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{Step: "health-check", RolledBack: true, Err: ErrHealthCheck}, "install step health-check: health check failed (rolled back to the previous release)"},
		{&Error{Step: "install", Err: os.ErrPermission}, "install step install: permission denied (not rolled back)"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
		if !errors.Is(tc.err, tc.err.Err) {
			t.Errorf("%v does not unwrap to %v", tc.err, tc.err.Err)
		}
	}
}
