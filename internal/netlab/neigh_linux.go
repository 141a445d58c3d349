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
// for a lab of n hosts; the last lab to close restores them.

var neigh struct {
	mu    sync.Mutex
	labs  int               // labs that raised the caps and are not closed
	saved map[string]string // original values, by file
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

// raiseNeighbours makes room for n hosts (and the root namespace) with
// room to spare for the rest of the machine; it never lowers a cap.
func (l *Lab) raiseNeighbours(n int) error {
	need := 2*(n+1)*(n+1) + 1024
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
			neigh.saved = map[string]string{}
		}
		if _, ok := neigh.saved[f.path]; !ok {
			neigh.saved[f.path] = strconv.Itoa(cur)
		}
		if err := os.WriteFile(f.path, []byte(strconv.Itoa(need/f.share)), 0o644); err != nil {
			return fmt.Errorf("raise %s for %d hosts: %w", f.path, n, err)
		}
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
		if werr := os.WriteFile(path, []byte(v), 0o644); werr != nil && err == nil {
			err = fmt.Errorf("restore %s: %w", path, werr)
		}
	}
	neigh.saved = nil
	return err
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
