//go:build !linux

// Command fleetlab measures a fleetcast rollout on a LAN of Linux network
// namespaces; on other systems it only says so.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "fleetlab: needs Linux network namespaces (ip netns, tc); it does not run on this system")
	os.Exit(1)
}
