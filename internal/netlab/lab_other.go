//go:build !linux

package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
)

// errUnsupported: network namespaces exist on Linux only.
var errUnsupported = fmt.Errorf("netlab: network namespaces need Linux: %w", errors.ErrUnsupported)

// Available reports why labs cannot be built here: always, off Linux.
func Available() error { return errUnsupported }

// New fails off Linux.
func New(prefix string) (*Lab, error) { return nil, errUnsupported }

// AddHost fails off Linux.
func (l *Lab) AddHost(name string, shape *Shape) (*Host, error) { return nil, errUnsupported }

// Close does nothing off Linux.
func (l *Lab) Close() error { return nil }

// Command returns a command that fails to start off Linux.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Err = errUnsupported
	return cmd
}

// Do fails off Linux.
func (h *Host) Do(fn func() error) error { return errUnsupported }

// Listen fails off Linux.
func (h *Host) Listen(network, addr string) (net.Listener, error) { return nil, errUnsupported }

// DialContext fails off Linux.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return nil, errUnsupported
}

// TxBytes fails off Linux.
func (h *Host) TxBytes() (int64, error) { return 0, errUnsupported }

// RxBytes fails off Linux.
func (h *Host) RxBytes() (int64, error) { return 0, errUnsupported }

// SetLinkUp fails off Linux.
func (h *Host) SetLinkUp(up bool) error { return errUnsupported }
