package service

import (
	"errors"
	"slices"
	"testing"

	kservice "github.com/kardianos/service"
)

// TestUnsupportedManager checks, where the chosen service manager is not one
// fleetcast sets up (SysV in a container, say), that Control and Status
// refuse before touching it.
func TestUnsupportedManager(t *testing.T) {
	if sys := kservice.ChosenSystem(); sys != nil && slices.Contains(supportedPlatforms, sys.String()) {
		t.Skipf("service manager %s is supported", sys)
	}
	cfg := Config{Name: "fleetcast-test-unsupported", Executable: "/bin/true"}
	for _, action := range actions {
		if err := Control(cfg, action); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("Control %s = %v, want ErrUnsupported", action, err)
		}
	}
	if st, err := Status(cfg); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Status = %q, %v; want ErrUnsupported", st, err)
	}
}

func TestControlRefusesUnknownAction(t *testing.T) {
	err := Control(Config{Name: "fleetcast"}, "enable")
	if err == nil || err.Error() != `unknown action "enable": want one of install, uninstall, start, stop, restart` {
		t.Errorf("Control enable = %v", err)
	}
}
