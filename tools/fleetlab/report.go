//go:build linux

package main

import (
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

// report is everything one fleetlab invocation measured.
type report struct {
	Options map[string]string `json:"options"`
	Size    int64             `json:"size_bytes"` // the artifact's size, S
	TMin    time.Duration     `json:"t_min_ns"`   // Kumar-Ross lower bound for the artifact
	Runs    []runResult       `json:"runs"`
}

// summary is the configuration, as the report shows it.
func (o *options) summary() map[string]string {
	return map[string]string{
		"agents": strconv.Itoa(o.n), "size": bytesText(o.size),
		"origin_rate": rateText(o.rates.origin), "peer_rate": rateText(o.rates.upload),
		"chunks": fmt.Sprintf("%s/%s/%s", bytesText(o.chunkMin), bytesText(o.chunkAvg), bytesText(o.chunkMax)),
		"seed":   strconv.FormatUint(o.seed, 10), "poll_interval": o.poll.String(),
	}
}

// write writes results.md, results.json, done.png (the systems of the base
// scenario) and scenarios.png (fleetcast's scenarios) into o.out, and the
// table (or, with -json, the JSON) to w.
func (r *report) write(o *options, w io.Writer) error {
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	md := r.markdown()
	for name, data := range map[string][]byte{"results.json": append(js, '\n'), "results.md": []byte(md)} {
		if err := os.WriteFile(filepath.Join(o.out, name), data, 0o644); err != nil {
			return err
		}
	}
	base := func(run runResult) bool { return run.Scenario == "base" }
	if err := plotDone(r, filepath.Join(o.out, "done.png"), base); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if slices.ContainsFunc(r.Runs, func(run runResult) bool { return !base(run) }) {
		if err := plotDone(r, filepath.Join(o.out, "scenarios.png"), func(run runResult) bool { return run.System == "fleetcast" }); err != nil {
			return fmt.Errorf("plot: %w", err)
		}
	}
	if o.json {
		_, err = w.Write(append(js, '\n'))
		return err
	}
	_, err = io.WriteString(w, md)
	return err
}

// markdown renders the configuration, the table and every run's notes and
// problems.
func (r *report) markdown() string {
	var b strings.Builder
	o := r.Options
	fmt.Fprintf(&b, "N=%s agents, artifact %s, origin upload %s, agent links %s each way, chunks %s, seed %s; T_min = %.2f s\n\n",
		o["agents"], o["size"], o["origin_rate"], o["peer_rate"], o["chunks"], o["seed"], r.TMin.Seconds())
	b.WriteString("| system | scenario | last agent | / T_min | median | p90 | origin egress | peak RSS | CPU per host | machine CPU | done |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, run := range r.Runs {
		s := run.stats()
		fmt.Fprintf(&b, "| %s | %s | %.2f s | %.2fx | %.2f s | %.2f s | %.3fx S | %s | %.2f s | %.0f%% | %d/%d |\n",
			run.System, run.Scenario, s.last.Seconds(), s.last.Seconds()/r.TMin.Seconds(), s.median.Seconds(), s.p90.Seconds(),
			float64(run.OriginEgress)/float64(r.Size), bytesText(s.peakRSS), s.cpu.Seconds(), 100*run.MachineCPU, s.done, len(run.Hosts))
	}
	for _, run := range r.Runs {
		if len(run.Notes)+len(run.Problems) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s, %s:\n", run.System, run.Scenario)
		for _, n := range run.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		for _, p := range run.Problems {
			fmt.Fprintf(&b, "- problem: %s\n", p)
		}
	}
	return b.String()
}

// runStats are a run's figures over its hosts.
type runStats struct {
	last, median, p90 time.Duration
	peakRSS           int64
	cpu               time.Duration // mean per host
	done              int
}

func (run *runResult) stats() runStats {
	var s runStats
	var times []time.Duration
	for _, h := range run.Hosts {
		if h.Done > 0 {
			times = append(times, h.Done)
			s.done++
		}
		s.peakRSS = max(s.peakRSS, h.PeakRSS)
		s.cpu += h.CPU
	}
	if len(run.Hosts) > 0 {
		s.cpu /= time.Duration(len(run.Hosts))
	}
	if len(times) == 0 {
		return s
	}
	slices.Sort(times)
	s.last = times[len(times)-1]
	if s.done < len(run.Hosts) {
		s.last = run.Elapsed // not everyone finished: the run's length is a lower bound
	}
	s.median = times[(len(times)-1)/2]
	s.p90 = times[min(len(times)-1, (len(times)*9+9)/10-1)]
	return s
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	default:
		return fmt.Sprintf("%dB", n)
	}
}

func rateText(bits int64) string {
	switch {
	case bits%1e9 == 0:
		return fmt.Sprintf("%dGbit", bits/1e9)
	case bits%1e6 == 0:
		return fmt.Sprintf("%dMbit", bits/1e6)
	default:
		return fmt.Sprintf("%dKbit", bits/1e3)
	}
}
