//go:build unix

package service

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/internal/testlog"
)

// TestRunStopsOnSignal runs Run in a child process, signals it once fn is
// running, and checks how the child ends.
func TestRunStopsOnSignal(t *testing.T) {
	for _, tc := range []struct {
		mode     string
		sig      syscall.Signal
		exit     int
		stdout   string
		stderr   string
		maxDelay time.Duration
	}{
		{"block", syscall.SIGTERM, 0, "ready\ncancelled\n", "", 5 * time.Second},
		{"block", syscall.SIGINT, 0, "ready\ncancelled\n", "", 5 * time.Second},
		{"fail-on-stop", syscall.SIGTERM, 3, "ready\ncancelled\n", "flush state: disk full", 5 * time.Second},
		// Stop timeout is 300ms in runHelper.
		{"ignore", syscall.SIGTERM, 3, "ready\n", "did not stop in time: still running 300ms after being asked to stop", 5 * time.Second},
	} {
		t.Run(tc.mode+"/"+tc.sig.String(), func(t *testing.T) {
			exit, stdout, stderr, took := runHelperProcess(t, tc.mode, tc.sig)
			if exit != tc.exit || stdout != tc.stdout || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr containing %q",
					exit, stdout, stderr, tc.exit, tc.stdout, tc.stderr)
			}
			if took > tc.maxDelay {
				t.Errorf("took %v after the signal, want under %v", took, tc.maxDelay)
			}
		})
	}
}

// runHelperProcess starts the test binary as a helper in mode, waits for fn
// to print "ready", sends sig and waits (up to 10s) for the helper to exit.
func runHelperProcess(t *testing.T, mode string, sig syscall.Signal) (exit int, stdout, stderr string, took time.Duration) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	var outBuf, errBuf testlog.Buffer
	cmd.Stdout, cmd.Stderr = &outBuf, &errBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(outBuf.String(), "ready\n"); {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("helper did not print ready; stderr: %s", errBuf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	signalled := time.Now()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-waited:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("helper still running 10s after %v", sig)
	}
	took = time.Since(signalled)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), outBuf.String(), errBuf.String(), took
}
