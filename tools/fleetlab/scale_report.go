//go:build linux

package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// scaleReport is everything one fleetlab -mode scale measured.
type scaleReport struct {
	Options map[string]string `json:"options"`
	Idle    time.Duration     `json:"idle_ns"` // the idle window asked for
	Runs    []scaleResult     `json:"runs"`
}

// scaleResult is what the probe measured at one N.
type scaleResult struct {
	N              int           `json:"agents"`
	Installed      int           `json:"installed"`        // agents that installed the release (file checked)
	Discovery      time.Duration `json:"discovery_ns"`     // from the agents' start until each followed min(N-1, 16) peers
	Rollout        time.Duration `json:"rollout_ns"`       // from publishing until the last agent installed
	Window         time.Duration `json:"window_ns"`        // the idle window as measured
	LANBytes       int64         `json:"lan_bytes"`        // sent into the bridge by every host (agents and origin) in the window
	MDNSPackets    int64         `json:"mdns_packets"`     // UDP to port 5353 sent on the LAN in the window
	MDNSPacketsRun int64         `json:"mdns_packets_run"` // the same, from before the agents started to the end
	MachineCPU     float64       `json:"machine_cpu"`      // busy fraction of all the machine's cores in the window
	Agents         []scaleAgent  `json:"hosts"`
	Problems       []string      `json:"problems,omitempty"`
}

// scaleAgent is one agent's idle figures.
type scaleAgent struct {
	Host     string        `json:"host"`
	Conns    int           `json:"tcp_established"` // median of the samples (one per second)
	ConnsMin int           `json:"tcp_established_min"`
	ConnsMax int           `json:"tcp_established_max"`
	Follows  int           `json:"follows"`   // peers it followed after the window (its status)
	CPU      time.Duration `json:"cpu_ns"`    // user + system time in the window
	RSS      int64         `json:"rss_bytes"` // resident memory at the window's end
}

// scaleSummary is the configuration, as the scale report shows it.
func (o *options) scaleSummary() map[string]string {
	ns := make([]string, len(o.ns))
	for i, n := range o.ns {
		ns[i] = strconv.Itoa(n)
	}
	return map[string]string{
		"agents": strings.Join(ns, ","), "size": bytesText(o.size), "idle": o.idle.String(),
		"origin_rate": rateText(o.rates.origin), "peer_rate": rateText(o.rates.upload),
		"poll_interval": o.poll.String(), "fleetcast": o.fleetcast,
	}
}

// write writes scale.md and scale.json into o.out, and the table (or, with
// -json, the JSON) to w.
func (r *scaleReport) write(o *options, w io.Writer) error {
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	js = append(js, '\n')
	md := r.markdown()
	for name, data := range map[string][]byte{"scale.json": js, "scale.md": []byte(md)} {
		if err := os.WriteFile(filepath.Join(o.out, name), data, 0o644); err != nil {
			return err
		}
	}
	if o.json {
		_, err = w.Write(js)
		return err
	}
	_, err = io.WriteString(w, md)
	return err
}

// markdown renders the configuration, one row per N, and the problems.
func (r *scaleReport) markdown() string {
	var b strings.Builder
	o := r.Options
	fmt.Fprintf(&b, "Idle cost after a rollout of %s: agents with the fleet secret, mDNS, poll_interval %s, other settings default; "+
		"origin upload %s, agent links %s each way; idle window %s\n\n", o["size"], o["poll_interval"], o["origin_rate"], o["peer_rate"], o["idle"])
	b.WriteString("| N | installed | follows (min/med/max) | TCP conns per agent (min/med/max) | LAN KiB/s | per agent | mDNS pkt/s | agents' CPU (% of one core) | per agent | RSS per agent (med/max) | machine CPU |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, run := range r.Runs {
		s := run.stats()
		fmt.Fprintf(&b, "| %d | %d/%d | %d/%d/%d | %d/%d/%d | %.1f | %.2f | %.1f | %.1f%% | %.2f%% | %s/%s | %.0f%% |\n",
			run.N, run.Installed, run.N, s.follows[0], s.follows[1], s.follows[2], s.conns[0], s.conns[1], s.conns[2],
			s.lanRate/1024, s.lanRate/1024/float64(run.N), s.mdnsRate, 100*s.cpu, 100*s.cpu/float64(run.N),
			bytesText(s.rss[0]), bytesText(s.rss[1]), 100*run.MachineCPU)
	}
	for _, run := range r.Runs {
		for _, p := range run.Problems {
			fmt.Fprintf(&b, "\nN=%d: problem: %s\n", run.N, p)
		}
	}
	return b.String()
}

// scaleStats are one N's figures over its agents and window.
type scaleStats struct {
	conns, follows [3]int   // min, median, max across agents
	rss            [2]int64 // median, max
	lanRate        float64  // bytes per second, all hosts
	mdnsRate       float64  // packets per second
	cpu            float64  // all agents' CPU time per second of the window: 1 is one core
}

func (run *scaleResult) stats() scaleStats {
	var s scaleStats
	if len(run.Agents) == 0 || run.Window <= 0 {
		return s
	}
	var conns, follows []int
	var rss []int64
	var cpu time.Duration
	for _, a := range run.Agents {
		conns, follows, rss = append(conns, a.Conns), append(follows, a.Follows), append(rss, a.RSS)
		cpu += a.CPU
	}
	s.conns = [3]int{slices.Min(conns), median(conns), slices.Max(conns)}
	s.follows = [3]int{slices.Min(follows), median(follows), slices.Max(follows)}
	s.rss = [2]int64{median(rss), slices.Max(rss)}
	sec := run.Window.Seconds()
	s.lanRate = float64(run.LANBytes) / sec
	s.mdnsRate = float64(run.MDNSPackets) / sec
	s.cpu = cpu.Seconds() / sec
	return s
}

// median is the middle value of xs (the lower one of an even count); xs
// must not be empty.
func median[T cmp.Ordered](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}
