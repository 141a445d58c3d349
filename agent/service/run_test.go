package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"
)

// helperEnv makes the test binary run runHelper instead of the tests, so a
// test can signal a process that is inside Run.
const helperEnv = "FLEETCAST_SERVICE_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	os.Exit(m.Run())
}

// runHelper calls Run with an fn that prints "ready", then behaves as mode
// says once asked to stop. It exits 0 when Run returns nil, else prints the
// error and exits 3.
func runHelper(mode string) int {
	fn := func(ctx context.Context) error {
		fmt.Println("ready")
		if mode == "ignore" {
			time.Sleep(time.Hour)
		}
		<-ctx.Done()
		fmt.Println("cancelled")
		if mode == "fail-on-stop" {
			return errors.New("flush state: disk full")
		}
		return ctx.Err()
	}
	if err := Run(fn, 300*time.Millisecond, nil); err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		return 3
	}
	return 0
}

func TestRunReturnsFnError(t *testing.T) {
	boom := errors.New("boom")
	err := Run(func(context.Context) error { return boom }, time.Second, nil)
	if !errors.Is(err, boom) {
		t.Errorf("Run = %v, want %v", err, boom)
	}
	if err := Run(func(context.Context) error { return nil }, time.Second, nil); err != nil {
		t.Errorf("Run of an fn that returns nil = %v", err)
	}
}

func TestRunnerStop(t *testing.T) {
	r := start(func(ctx context.Context) error { <-ctx.Done(); return fmt.Errorf("loop: %w", ctx.Err()) })
	if err := r.stop(5 * time.Second); err != nil {
		t.Errorf("stop of an fn returning ctx's error = %v, want nil", err)
	}

	hang := make(chan struct{})
	defer close(hang)
	r = start(func(context.Context) error { <-hang; return nil })
	began := time.Now()
	err := r.stop(50 * time.Millisecond)
	if !errors.Is(err, ErrStopTimeout) {
		t.Errorf("stop of an fn ignoring ctx = %v, want ErrStopTimeout", err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("stop took %v with a 50ms timeout", d)
	}
}
