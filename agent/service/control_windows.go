package service

import (
	"fmt"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc/mgr"
)

func checkPrivileges() error {
	if !windows.GetCurrentProcessToken().IsElevated() {
		return errPrivileges("Administrator (an elevated prompt)")
	}
	return nil
}

// afterInstall makes the recovery actions (restart after 5s) also apply when
// the service stops itself with an error, as Run reports when the agent fails;
// by default Windows applies them only when the process dies.
func afterInstall(name string) error {
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("set recovery on failure: %w", err)
	}
	defer m.Disconnect()
	s, err := m.OpenService(name)
	if err != nil {
		return fmt.Errorf("set recovery on failure: %w", err)
	}
	defer s.Close()
	if err := s.SetRecoveryActionsOnNonCrashFailures(true); err != nil {
		return fmt.Errorf("set recovery on failure: %w", err)
	}
	return nil
}
