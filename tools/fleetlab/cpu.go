//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// cpuSample is the machine's CPU time so far, from /proc/stat, in ticks.
type cpuSample struct{ busy, total uint64 }

// readCPU samples /proc/stat's "cpu" line; a zero sample when it cannot.
func readCPU() cpuSample {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return cpuSample{}
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return cpuSample{}
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 5 || fields[0] != "cpu" {
		return cpuSample{}
	}
	var s cpuSample
	for i, v := range fields[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i >= 8 {
			break // guest time is counted in user time already
		}
		s.total += n
		if i != 3 && i != 4 { // idle, iowait
			s.busy += n
		}
	}
	return s
}

// busySince is the fraction of the machine's CPU time (all cores) that was
// busy since s: near 1, the lab itself is the bottleneck.
func (s cpuSample) busySince() float64 { return s.busyUntil(readCPU()) }

// busyUntil is the busy fraction of the machine's CPU time between s and
// a later sample now.
func (s cpuSample) busyUntil(now cpuSample) float64 {
	if now.total <= s.total {
		return 0
	}
	return float64(now.busy-s.busy) / float64(now.total-s.total)
}

// userHZ is the unit of the times in /proc/PID/stat: 100 per second on
// every Linux architecture Go supports (USER_HZ, not the kernel's HZ).
const userHZ = 100

// processCPU is the user and system time of process pid so far, all its
// threads together, from /proc/PID/stat (10 ms resolution).
func processCPU(pid int) (time.Duration, error) {
	b, err := readBounded(fmt.Sprintf("/proc/%d/stat", pid), 4<<10)
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is the first, utime the 12th, stime the 13th.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}
