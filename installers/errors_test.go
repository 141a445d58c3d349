package installers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetcast/fleetcast/manifest"
)

// TestErrorSaysWhatHappened: the suffix of an install error tells whether
// the target changed and whether it was put back, once.
func TestErrorSaysWhatHappened(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{Step: "install", Unchanged: true, Err: ErrUnsafeArchive}, "install step install: unsafe archive (the target was not changed)"},
		{&Error{Step: "install", Err: fmt.Errorf("x: %w", errNoRollbackCommand)},
			"install step install: x: the manifest has no rollback command, so nothing was rolled back"},
		{&Error{Step: "install", Err: os.ErrPermission}, "install step install: permission denied (not rolled back)"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

// TestUnsafeArchiveLeavesTargetUnchanged: an unsafe archive is reported as
// an install failure that did not change the target, never as "not rolled
// back", and is not a health check failure.
func TestUnsafeArchiveLeavesTargetUnchanged(t *testing.T) {
	skipOnWindows(t)
	dir := t.TempDir()
	rel := release(t, dir, 1, "1.0", makeTarGz(t, []tarEntry{{name: "../x", body: "evil"}}),
		manifest.Install{Installer: "archive", Target: filepath.Join(dir, "app")})
	_, err := Install(context.Background(), request(t, rel, nil, t.TempDir()))
	ie := asError(t, err)
	if !errors.Is(err, ErrUnsafeArchive) || errors.Is(err, ErrHealthCheck) || !ie.Unchanged || ie.RolledBack {
		t.Fatalf("Install: %+v; want an unchanged-target unsafe archive error", ie)
	}
	if strings.Contains(err.Error(), "not rolled back") {
		t.Fatalf("%q says \"not rolled back\" though nothing changed", err)
	}
}
