package service

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sys/windows/svc"
)

// underServiceManager reports whether the Service Control Manager started
// this process, as opposed to a console.
func underServiceManager() bool {
	is, err := svc.IsWindowsService()
	return err == nil && is
}

func runUnderServiceManager(fn func(context.Context) error, stopTimeout time.Duration, log *slog.Logger) error {
	h := &scmHandler{fn: fn, stopTimeout: stopTimeout, log: log, result: make(chan error, 1)}
	// The name is ignored for a service that has its process to itself
	// (SERVICE_WIN32_OWN_PROCESS, as kardianos installs it) and may be empty.
	if err := svc.Run("", h); err != nil {
		return fmt.Errorf("run as a Windows service: %w", err)
	}
	select {
	case err := <-h.result:
		return err
	default:
		return nil
	}
}

// scmHandler runs fn as the service's body: it ends when fn returns, or
// stops fn when the SCM sends stop or shutdown.
type scmHandler struct {
	fn          func(context.Context) error
	stopTimeout time.Duration
	log         *slog.Logger
	result      chan error // Execute's outcome, for runUnderServiceManager
}

var _ svc.Handler = (*scmHandler)(nil)

// Execute reports an error as service-specific exit code 1, which starts
// the recovery actions (see afterInstall).
func (h *scmHandler) Execute(_ []string, reqs <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.StartPending}
	r := start(h.fn)
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	err := h.wait(r, reqs, status)
	h.result <- err
	if err != nil {
		return true, 1
	}
	return false, 0
}

func (h *scmHandler) wait(r *runner, reqs <-chan svc.ChangeRequest, status chan<- svc.Status) error {
	for {
		select {
		case <-r.done:
			return r.err
		case req := <-reqs:
			switch req.Cmd {
			case svc.Interrogate:
				status <- req.CurrentStatus
			case svc.Stop, svc.Shutdown:
				hint := uint32((h.stopTimeout + time.Second).Milliseconds())
				status <- svc.Status{State: svc.StopPending, WaitHint: hint}
				h.log.Info("stop requested", slog.String("by", "service control manager"), slog.Duration("timeout", h.stopTimeout))
				return r.stop(h.stopTimeout)
			}
		}
	}
}
