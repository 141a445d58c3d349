// Package benchrun is what the bench commands (agentbench, publishbench)
// share to time the systems they compare: the fleetcast binary they run,
// the artifact they write, a command run once with its wall time, CPU time
// and peak RSS, the sync that settles the disk between runs, and the
// median and peak over the runs that their reports print.
package benchrun

import (
	"fmt"
	"os/exec"
	"time"
)

// Sample is one timed run of one system.
type Sample struct {
	Wall time.Duration // the whole command
	User time.Duration // CPU time of the command; 0 when it ran in this process
	Sys  time.Duration
	// MaxRSS is the command's peak resident set size in bytes, 0 when
	// unknown. On Linux it is at least this process's own peak: Go starts
	// commands with vfork, and the kernel counts the parent's memory that
	// the child shared until it called exec.
	MaxRSS int64
}

// CPU is the command's user and system CPU time.
func (s Sample) CPU() time.Duration { return s.User + s.Sys }

// maxOutput is how much of a command's output Timed keeps.
const maxOutput = 1 << 20

// Timed runs the command name with args and returns its Sample and the
// first maxOutput bytes of what it wrote to stdout and stderr. When the
// command fails, the Sample has only its wall time and the error holds the
// output.
func Timed(name string, args ...string) (Sample, []byte, error) {
	cmd := exec.Command(name, args...)
	var out capBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	m := Sample{Wall: time.Since(start)}
	if err != nil {
		return m, out.b, fmt.Errorf("%s %v: %v\n%s", name, args, err, out.b)
	}
	ps := cmd.ProcessState
	m.User, m.Sys = ps.UserTime(), ps.SystemTime()
	m.MaxRSS = maxRSS(ps)
	return m, out.b, nil
}

// capBuffer keeps the first maxOutput bytes written to it and drops the
// rest. It is written by one goroutine at a time: exec.Cmd copies stdout
// and stderr through one goroutine when both are the same writer.
type capBuffer struct{ b []byte }

func (c *capBuffer) Write(p []byte) (int, error) {
	if room := maxOutput - len(c.b); room > 0 {
		c.b = append(c.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
