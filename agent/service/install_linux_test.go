package service

import (
	"os"
	"path/filepath"
	"testing"

	kservice "github.com/kardianos/service"
)

// TestKardianosWritesSystemdUnit installs through kardianos's systemd backend
// (as a user service under a temporary HOME, with no systemctl on PATH, so
// nothing outside the test directory is touched) and checks that the file it
// writes is exactly SystemdUnit's.
func TestKardianosWritesSystemdUnit(t *testing.T) {
	var systemd kservice.System
	for _, s := range kservice.AvailableSystems() {
		if s.String() == "linux-systemd" {
			systemd = s
		}
	}
	if systemd == nil {
		t.Fatal("kardianos has no linux-systemd backend")
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("PATH", t.TempDir())
	t.Setenv("XDG_RUNTIME_DIR", home)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")

	cfg := trickyConfig("/opt/fleet cast/100%/fleetcast")
	kc, err := kardianosConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	kc.Option["UserService"] = true
	s, err := systemd.New(nil, kc)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Install() // writes the unit, then fails to run systemctl enable
	t.Logf("install without systemctl: %v", err)

	got, err := os.ReadFile(filepath.Join(home, ".config/systemd/user/fleetcast.service"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := SystemdUnit(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("kardianos wrote\n%s\nSystemdUnit renders\n%s", got, want)
	}
}
