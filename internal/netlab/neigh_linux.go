package netlab

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// The kernel's neighbour (ARP and NDP) tables are shared by every network
// namespace, and gc_thresh3 caps their entries in all of them together (1024
// by default). On a lab of n hosts each host may learn every other one, so
// about n² entries: past some 30 hosts the table is full, and new neighbours
// can no longer be resolved (seen as table_fulls in /proc/net/stat/arp_cache
// and hosts the test process cannot reach). raiseNeighbours lifts the caps
// for a lab of n hosts when the defaults are too small; the last lab of this
// process to close restores each cap it changed, unless something else has
// changed it since.

var neigh struct {
	mu      sync.Mutex
	labs    int            // labs that raised the caps and are not closed
	saved   map[string]int // original values, by file
	written map[string]int // what this process wrote, by file
}

// neighFiles are the caps, by the share of the need each gets.
var neighFiles = []struct {
	path  string
	share int // need / share
}{
	{"/proc/sys/net/ipv4/neigh/default/gc_thresh3", 1},
	{"/proc/sys/net/ipv4/neigh/default/gc_thresh2", 2},
	{"/proc/sys/net/ipv6/neigh/default/gc_thresh3", 1},
	{"/proc/sys/net/ipv6/neigh/default/gc_thresh2", 2},
}

// raiseNeighbours makes room for n hosts (and the root namespace), each of
// which may know every other one over IPv4 and IPv6, with as much again to
// spare for the rest of the machine; it never lowers a cap.
func (l *Lab) raiseNeighbours(n int) error {
	need := 4 * (n + 1) * (n + 1)
	neigh.mu.Lock()
	defer neigh.mu.Unlock()
	for _, f := range neighFiles {
		cur, err := readInt(f.path)
		if err != nil {
			return err
		}
		if cur >= need/f.share {
			continue
		}
		if neigh.saved == nil {
			neigh.saved, neigh.written = map[string]int{}, map[string]int{}
		}
		if _, ok := neigh.saved[f.path]; !ok {
			neigh.saved[f.path] = cur
		}
		if err := os.WriteFile(f.path, []byte(strconv.Itoa(need/f.share)), 0o644); err != nil {
			return fmt.Errorf("raise %s for %d hosts: %w", f.path, n, err)
		}
		neigh.written[f.path] = need / f.share
	}
	if !l.raised && neigh.saved != nil {
		l.raised = true
		neigh.labs++
	}
	return nil
}

// restoreNeighbours puts the caps back when the last lab that raised them
// closes.
func (l *Lab) restoreNeighbours() error {
	neigh.mu.Lock()
	defer neigh.mu.Unlock()
	if !l.raised {
		return nil
	}
	l.raised = false
	if neigh.labs--; neigh.labs > 0 {
		return nil
	}
	var err error
	for path, v := range neigh.saved {
		if cur, rerr := readInt(path); rerr != nil || cur != neigh.written[path] {
			continue // changed by someone else since: theirs to restore
		}
		if werr := os.WriteFile(path, []byte(strconv.Itoa(v)), 0o644); werr != nil && err == nil {
			err = fmt.Errorf("restore %s: %w", path, werr)
		}
	}
	neigh.saved, neigh.written = nil, nil
	return err
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
