//go:build !windows

package service

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// underServiceManager reports whether Run must talk to the service manager.
// systemd and launchd stop a service with SIGTERM, so only Windows does.
func underServiceManager() bool { return false }

func runUnderServiceManager(func(context.Context) error, time.Duration, *slog.Logger) error {
	return errors.ErrUnsupported
}
