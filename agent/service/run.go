package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// ErrStopTimeout is returned by Run when fn is still running stopTimeout
// after being asked to stop.
var ErrStopTimeout = errors.New("did not stop in time")

// Run runs fn until it returns or the service manager or a signal (SIGTERM,
// SIGINT; the Windows service stop and shutdown requests) asks it to stop,
// which cancels fn's ctx; Run then waits up to stopTimeout for fn to return.
// It returns fn's error, nil on a clean stop (fn returning nil or ctx's
// error), or ErrStopTimeout. It works both in the foreground and under the
// service manager. After the first signal a second one has its default
// effect, so an operator can still kill a stop that hangs.
//
// log records why fn was asked to stop; nil discards.
func Run(fn func(ctx context.Context) error, stopTimeout time.Duration, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if underServiceManager() {
		return runUnderServiceManager(fn, stopTimeout, log)
	}
	return runUntilSignal(fn, stopTimeout, log)
}

func runUntilSignal(fn func(ctx context.Context) error, stopTimeout time.Duration, log *slog.Logger) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM) // before fn starts, so no signal is missed
	defer signal.Stop(sigs)
	r := start(fn)
	select {
	case <-r.done:
		return r.err
	case sig := <-sigs:
		signal.Stop(sigs)
		log.Info("stop requested", slog.String("signal", sig.String()), slog.Duration("timeout", stopTimeout))
		return r.stop(stopTimeout)
	}
}

// runner is fn running in its own goroutine.
type runner struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when fn has returned
	err    error         // fn's result, read only after done is closed
}

func start(fn func(ctx context.Context) error) *runner {
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = fn(ctx)
	}()
	return r
}

// stop cancels fn's context and waits up to timeout for fn to return.
func (r *runner) stop(timeout time.Duration) error {
	r.cancel()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-r.done:
		if errors.Is(r.err, context.Canceled) {
			return nil
		}
		return r.err
	case <-t.C:
		return fmt.Errorf("%w: still running %v after being asked to stop", ErrStopTimeout, timeout)
	}
}
