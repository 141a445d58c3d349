//go:build linux

package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// toolPackages names the Debian package of each command a baseline runs.
var toolPackages = map[string]string{
	"aria2c":      "aria2",
	"mktorrent":   "mktorrent",
	"opentracker": "opentracker",
	"curl":        "curl",
	"time":        "time", // GNU time, for the peak RSS of a tool
}

// requireTools checks that every named command is on PATH. When some are
// missing and this process is root with apt-get at hand, it installs their
// Debian packages (running apt-get update once if the first install fails);
// otherwise it returns an error naming the packages to install.
func requireTools(names ...string) error {
	missing := missingTools(names)
	if len(missing) == 0 {
		return nil
	}
	pkgs := toolPackagesOf(missing)
	if os.Geteuid() != 0 {
		return fmt.Errorf("missing %s: install them as root with: apt-get install %s",
			strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("missing %s and no apt-get to install them: install the packages %s",
			strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
	if err := aptInstall(pkgs); err != nil {
		return fmt.Errorf("missing %s: %w", strings.Join(missing, ", "), err)
	}
	if still := missingTools(names); len(still) > 0 {
		return fmt.Errorf("installed %s but %s still not on PATH", strings.Join(pkgs, " "), strings.Join(still, ", "))
	}
	return nil
}

func missingTools(names []string) []string {
	var missing []string
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			missing = append(missing, n)
		}
	}
	return missing
}

// toolPackagesOf maps commands to their Debian packages, without duplicates;
// a command not in toolPackages is taken to be its own package's name.
func toolPackagesOf(names []string) []string {
	var pkgs []string
	for _, n := range names {
		p, ok := toolPackages[n]
		if !ok {
			p = n
		}
		if !slices.Contains(pkgs, p) {
			pkgs = append(pkgs, p)
		}
	}
	return pkgs
}

// aptInstall installs pkgs with apt-get, updating the package lists and
// trying again when the first attempt fails (e.g. stale or empty lists).
func aptInstall(pkgs []string) error {
	install := append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)
	if aptGet(install...) == nil {
		return nil
	}
	if err := aptGet("update"); err != nil {
		return err
	}
	return aptGet(install...)
}

func aptGet(args ...string) error {
	cmd := exec.Command("apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("apt-get %s: %w: %s", strings.Join(args, " "), err, lastLines(out, 5))
	}
	return nil
}

// lastLines returns up to n trailing lines of out, trimmed.
func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// toolProc is a baseline's tool started in a lab host, its output going to
// a log file.
type toolProc struct {
	cmd      *exec.Cmd
	dir      string // the tool's HOME
	log      string
	exited   chan struct{} // closed when Wait returned
	err      error         // Wait's result, once exited is closed
	reported bool          // its early exit is already a problem of the run
	peakRSS  int64         // bytes, noted by notePeakRSS while it ran
}

// startTool starts cmd with its output in logFile and home as its HOME.
func startTool(cmd *exec.Cmd, logFile, home string) (*toolProc, error) {
	p := &toolProc{cmd: cmd, dir: home, log: logFile}
	if err := p.start(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *toolProc) start() error {
	f, err := os.Create(p.log)
	if err != nil {
		return err
	}
	defer f.Close() // the child has its own copy
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if p.cmd.Env == nil {
		p.cmd.Env = toolEnv(p.dir)
	}
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name(), err)
	}
	p.exited = make(chan struct{})
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	return nil
}

// name is the tool's command name (the command runs "ip netns exec NS name").
func (p *toolProc) name() string {
	if len(p.cmd.Args) > 4 {
		return p.cmd.Args[4]
	}
	return p.cmd.Path
}

// wait waits until the tool exited; it returns at once for a nil or
// never-started tool.
func (p *toolProc) wait() {
	if p != nil && p.exited != nil {
		<-p.exited
	}
}

func (p *toolProc) hasExited() bool {
	if p == nil || p.exited == nil {
		return false
	}
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// exitError describes how the exited tool ended, with the tail of its log.
func (p *toolProc) exitError() error {
	tail, err := logTail(p.log, maxToolOutput)
	if err != nil {
		tail = []byte("(no log: " + err.Error() + ")")
	}
	return fmt.Errorf("%s exited early (%v): %s", p.name(), p.err, lastLines(tail, 5))
}

// notePeakRSS notes the peak RSS of the running tool: VmHWM of its
// process, which ip netns exec replaced with the tool. (The Maxrss of its
// rusage would count this process's own peak too: Go starts commands with
// vfork.) It does nothing once the tool exited.
func (p *toolProc) notePeakRSS() {
	if p == nil || p.exited == nil || p.hasExited() {
		return
	}
	pid := p.cmd.Process.Pid
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(comm)) != filepath.Base(p.name()) {
		return // not (or no longer) the tool
	}
	if kib, err := statusKiB(pid, "VmHWM"); err == nil {
		p.peakRSS = max(p.peakRSS, kib<<10)
	}
}

// statusKiB reads a "Name:  N kB" line of /proc/PID/status.
func statusKiB(pid int, name string) (int64, error) {
	b, err := readBounded(fmt.Sprintf("/proc/%d/status", pid), 64<<10)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", name, pid)
}

// logNote is "; NAME log: TAIL" of a started tool's log, or "".
func (p *toolProc) logNote() string {
	if p == nil {
		return ""
	}
	tail, err := logTail(p.log, maxToolOutput)
	if err != nil || len(tail) == 0 {
		return ""
	}
	return "; " + p.name() + " log: " + lastLines(tail, 5)
}

// logTail returns up to limit trailing bytes of the file at path.
func logTail(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(0, fi.Size()-limit)
	return io.ReadAll(io.NewSectionReader(f, off, limit))
}
