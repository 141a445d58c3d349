package main

// agentbench needs a Unix system: it starts nginx in its own process group
// and syncs the page cache between runs.

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "agentbench: runs on Linux and other Unix systems only")
	os.Exit(2)
}
