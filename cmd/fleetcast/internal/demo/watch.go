package demo

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fleetcast/fleetcast/internal/units"

	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/agent/statusclient"
)

// Watch settings: how often the agents are asked, how often a progress
// line is printed when stdout is not a terminal, the bar's width.
const (
	pollEvery     = 250 * time.Millisecond
	progressEvery = time.Second
	barWidth      = 20
)

// row is what the demo knows of one agent during one release.
type row struct {
	name                 string
	phase                string
	pct                  int // -1: unknown
	origin, peer, reused int64
	installed            time.Duration // since the publish; 0 until installed
	lastErr              string
	tr                   *peerproto.Transfer // the release's transfer, once reported
}

// update folds in one status answer for release seq, published at start.
func (r *row) update(res statusclient.Result, seq uint64, start time.Time) {
	if res.Err != nil {
		r.lastErr = res.Err.Error()
		return
	}
	if len(res.Status.Subscriptions) == 0 {
		r.phase, r.lastErr = "no subscription", "the agent reports no subscription"
		return
	}
	sub := res.Status.Subscriptions[0]
	r.lastErr = ""
	if sub.LastCheck.After(start) { // not the 404 of a poll before the publish
		r.lastErr = sub.LastError
	}
	if tr := sub.LastTransfer; tr != nil && sub.LastTransferSequence == seq {
		r.tr = tr
		r.origin, r.peer, r.reused = tr.Origin, tr.Peer, reusedBytes(tr)
	}
	p := sub.Progress
	switch {
	case sub.InstalledSequence >= seq && r.tr != nil:
		if r.installed == 0 {
			r.installed = time.Since(start)
		}
		r.phase, r.pct = "installed", 100
	case p != nil && p.Sequence == seq:
		r.phase, r.pct = p.Phase, percent(p.DoneBytes, p.TotalBytes)
		r.origin, r.peer, r.reused = p.OriginBytes, p.PeerBytes, p.ReusedBytes
	case sub.TrustedSequence >= seq:
		r.phase, r.pct = "fetching", -1
	default:
		r.phase, r.pct = "waiting", -1
	}
}

// reusedBytes is what the agent did not fetch: chunks already in its
// store, verified by an interrupted attempt, or repeated in the artifact.
func reusedBytes(tr *peerproto.Transfer) int64 { return tr.ReusedLocal + tr.Resumed + tr.Duplicate }

func percent(done, total int64) int {
	if total <= 0 {
		return -1
	}
	return int(min(100, max(0, done*100/total)))
}

func allInstalled(rows []row) bool {
	for _, r := range rows {
		if r.installed == 0 {
			return false
		}
	}
	return true
}

// watch polls the agents until each has installed release seq, showing
// the rollout, and returns what each did.
func (d *demo) watch(ctx context.Context, seq uint64, start time.Time, sentBefore int64) ([]row, error) {
	rows := make([]row, len(d.agents))
	for i, a := range d.agents {
		rows[i] = row{name: a.name, phase: "waiting", pct: -1}
	}
	v := &view{w: d.out, tty: d.tty, start: start, last: make([]string, len(rows))}
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		if err := d.checkAgentsRunning(); err != nil {
			return nil, err
		}
		results := d.gather(ctx)
		for i := range rows {
			rows[i].update(results[i], seq, start)
		}
		v.render(rows, d.origin.sent.Load()-sentBefore)
		if allInstalled(rows) {
			return rows, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("release %d is not installed on every agent after %v: %s", seq, time.Since(start).Round(time.Second), pending(rows))
		case <-tick.C:
		}
	}
}

// pending says where the agents without the release are.
func pending(rows []row) string {
	var s []string
	for _, r := range rows {
		if r.installed == 0 {
			e := ""
			if r.lastErr != "" {
				e = ", last error: " + r.lastErr
			}
			s = append(s, fmt.Sprintf("%s %s%s", r.name, r.phase, e))
		}
	}
	return strings.Join(s, "; ")
}

// view prints the rollout: on a terminal, one line per agent redrawn
// in place; elsewhere, a line per change of phase and a progress line at
// most every progressEvery, without escape codes.
type view struct {
	w            io.Writer
	tty          bool
	start        time.Time
	drawn        int      // lines drawn on the terminal
	last         []string // phase last printed, by agent
	lastProgress time.Time
}

func (v *view) render(rows []row, originSent int64) {
	if v.tty {
		v.redraw(rows, originSent)
		return
	}
	v.logChanges(rows, originSent)
}

func (v *view) redraw(rows []row, originSent int64) {
	var b strings.Builder
	if v.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", v.drawn)
	}
	lines := []string{v.fleetLine(rows, originSent)}
	for _, r := range rows {
		lines = append(lines, r.line())
	}
	for _, l := range lines {
		b.WriteString("\r\x1b[2K" + l + "\n")
	}
	v.drawn = len(lines)
	io.WriteString(v.w, b.String())
}

func (v *view) logChanges(rows []row, originSent int64) {
	now := time.Now()
	for i, r := range rows {
		if r.phase == v.last[i] {
			continue
		}
		v.last[i] = r.phase
		if r.phase == "installed" {
			fmt.Fprintf(v.w, "  %s: installed after %s (from peers %s, from origin %s, reused %s)\n", r.name,
				secs(r.installed), units.FormatBytes(r.peer), units.FormatBytes(r.origin), units.FormatBytes(r.reused))
		} else {
			fmt.Fprintf(v.w, "  %s: %s\n", r.name, r.phase)
		}
	}
	if now.Sub(v.lastProgress) >= progressEvery && !allInstalled(rows) {
		v.lastProgress = now
		fmt.Fprintln(v.w, v.fleetLine(rows, originSent))
	}
}

// fleetLine is the rollout at a glance.
func (v *view) fleetLine(rows []row, originSent int64) string {
	n, peer := 0, int64(0)
	for _, r := range rows {
		if r.installed != 0 {
			n++
		}
		peer += r.peer
	}
	return fmt.Sprintf("  [%s] %d/%d installed; origin sent %s, peers moved %s", secs(time.Since(v.start)),
		n, len(rows), units.FormatBytes(originSent), units.FormatBytes(peer))
}

// line is one agent on the terminal: name, phase, bar, bytes by source.
func (r row) line() string {
	bar, pct := strings.Repeat(".", barWidth), "  ?%"
	if r.pct >= 0 {
		full := r.pct * barWidth / 100
		bar, pct = strings.Repeat("#", full)+strings.Repeat(".", barWidth-full), fmt.Sprintf("%3d%%", r.pct)
	}
	return fmt.Sprintf("  %-7s %-10s [%s] %s  peers %9s  origin %9s  reused %9s", r.name, r.phase, bar, pct,
		units.FormatBytes(r.peer), units.FormatBytes(r.origin), units.FormatBytes(r.reused))
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }
