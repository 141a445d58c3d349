//go:build !windows

package service

import "os"

func checkPrivileges() error {
	if os.Geteuid() != 0 {
		return errPrivileges("root")
	}
	return nil
}

func afterInstall(string) error { return nil }
