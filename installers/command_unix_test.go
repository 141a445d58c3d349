//go:build unix

package installers

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/manifest"
)

// TestCommandTimeoutKillsGroup runs an install command that starts a child
// and waits: on timeout both must die.
func TestCommandTimeoutKillsGroup(t *testing.T) {
	sh := lookPath(t, "sh")
	lookPath(t, "sleep")
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	rel := release(t, dir, 1, "1.0", nil, manifest.Install{Installer: "command",
		Command: []string{sh, "-c", `sleep 60 & echo $! > "$0"; wait`, pidFile}})
	req := request(t, rel, nil, dir)
	req.CommandTimeout = 300 * time.Millisecond
	start := time.Now()
	_, err := Install(context.Background(), req)
	if err == nil || !strings.Contains(err.Error(), "killed it and its process group") {
		t.Fatalf("Install: %v, want a timeout", err)
	}
	if d := time.Since(start); d > pipeWaitDelay {
		t.Errorf("Install took %v: the process group was not killed", d)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(readFile(t, pidFile)))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d of the timed out command still runs", pid)
		}
		time.Sleep(10 * time.Millisecond) // poll with a deadline
	}
}

// alive reports whether pid runs (a zombie does not count).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // no /proc: trust kill
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) == 0 || fields[0] != "Z"
}

// TestCommandInterrupted cancels the context while the health check runs:
// no verdict, so no rollback and no ErrHealthCheck. The check announces
// that it started through a fifo.
func TestCommandInterrupted(t *testing.T) {
	sh := lookPath(t, "sh")
	dir := t.TempDir()
	fifo, rbOut := filepath.Join(dir, "started"), filepath.Join(dir, "rolled-back")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	rel := release(t, dir, 1, "1.0", nil, manifest.Install{Installer: "command", Command: []string{sh, "-c", "exit 0"},
		HealthCheck:     []string{sh, "-c", `echo started > "$0"; sleep 60`, fifo},
		RollbackCommand: []string{sh, "-c", `touch "$0"`, rbOut}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		defer cancel()
		f, err := os.Open(fifo) // blocks until the health check opens it
		if err != nil {
			return
		}
		defer f.Close()
		bufio.NewReader(f).ReadString('\n')
	}()
	_, err := Install(ctx, request(t, rel, nil, dir))
	if ie := asError(t, err); ie.Step != stepHealthCheck || ie.RolledBack || errors.Is(err, ErrHealthCheck) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Install: %v; want an interrupted health check, not a verdict", err)
	}
	if exists(rbOut) {
		t.Fatal("rollback ran after an interruption")
	}
}
