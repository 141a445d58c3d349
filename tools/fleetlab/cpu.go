//go:build linux

package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
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
func (s cpuSample) busySince() float64 {
	now := readCPU()
	if now.total <= s.total {
		return 0
	}
	return float64(now.busy-s.busy) / float64(now.total-s.total)
}
