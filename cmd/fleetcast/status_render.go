package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fleetcast/fleetcast/internal/units"

	"github.com/schollz/progressbar/v3"

	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/agent/statusclient"
)

// barWidth is the width of the progress bar's track, in cells.
const barWidth = 30

// formatStatus renders an agent's status for people: plain lines, plus a
// progress bar when tty. rates holds bytes/s measured by --watch per
// subscription; a missing one is computed from the update's start.
func formatStatus(st peerproto.Status, now time.Time, rates map[string]float64, tty bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "agent %s, fleet %s, root version %d\n", st.AgentID, st.FleetID, st.RootVersion)
	fmt.Fprintf(&b, "since start: %s from the origin, %s in %d chunks served to peers\n",
		units.FormatBytes(st.OriginBytes), units.FormatBytes(st.UploadedBytes), st.UploadedChunks)
	for _, s := range st.Subscriptions {
		b.WriteString("\n")
		writeSubscription(&b, s, now, rates[subKey(s)], tty)
	}
	b.WriteString("\n")
	writePeers(&b, st.Peers, now)
	return b.String()
}

func writeSubscription(b *strings.Builder, s peerproto.SubscriptionStatus, now time.Time, rate float64, tty bool) {
	fmt.Fprintf(b, "%s/%s\n", s.Product, s.Channel)
	if s.InstalledSequence == 0 {
		fmt.Fprintf(b, "  installed:     nothing yet; trusted sequence %d\n", s.TrustedSequence)
	} else {
		fmt.Fprintf(b, "  installed:     %s (sequence %d); trusted sequence %d\n", s.InstalledVersion, s.InstalledSequence, s.TrustedSequence)
	}
	if s.LastCheck.IsZero() {
		b.WriteString("  last check:    none yet\n")
	} else {
		fmt.Fprintf(b, "  last check:    %s (%s ago): %s\n", s.LastCheck.Local().Format(time.DateTime), ago(now, s.LastCheck), s.LastOutcome)
	}
	if s.LastError != "" {
		fmt.Fprintf(b, "  last error:    %s\n", s.LastError)
	}
	if s.FailedSequence != 0 {
		fmt.Fprintf(b, "  failed:        sequence %d failed its health check and was rolled back; waiting for a newer one\n", s.FailedSequence)
	}
	if p := s.Progress; p != nil {
		fmt.Fprintf(b, "  updating:      to %s (sequence %d), %s since %s\n", p.Version, p.Sequence, p.Phase, p.Started.Local().Format(time.TimeOnly))
		if tty {
			fmt.Fprintf(b, "  %s %s\n", progressBar(p), progressText(p, now, rate))
		} else {
			fmt.Fprintf(b, "  progress: %s\n", progressText(p, now, rate))
		}
	}
	if t := s.LastTransfer; t != nil {
		by := statusclient.TransferBytes(peerproto.SubscriptionStatus{LastTransfer: t})
		fmt.Fprintf(b, "  last transfer: sequence %d, %s: from peers %s, from the origin %s, reused %s, in %.1fs\n",
			s.LastTransferSequence, units.FormatBytes(t.ArtifactBytes), units.FormatBytes(by.Peers), units.FormatBytes(by.Origin), units.FormatBytes(by.Reused), t.Seconds)
	}
}

// progressText is "12.5 MiB of 32.0 MiB (39%), 8.1 MiB/s, eta 2s, from
// peers 71%, origin 20%, reused 9%". A rate <= 0 is computed from the bytes
// fetched (peers and origin) since p.Started.
func progressText(p *peerproto.Progress, now time.Time, rate float64) string {
	if rate <= 0 {
		if secs := now.Sub(p.Started).Seconds(); secs > 0 {
			rate = float64(p.PeerBytes+p.OriginBytes) / secs
		}
	}
	eta := "eta unknown"
	left := p.TotalBytes - p.DoneBytes
	switch {
	case left <= 0:
		eta = "all verified"
	case rate > 0:
		eta = "eta " + (time.Duration(float64(left) / rate * float64(time.Second))).Round(time.Second).String()
	}
	return fmt.Sprintf("%s of %s (%d%%), %s/s, %s, from peers %d%%, origin %d%%, reused %d%%",
		units.FormatBytes(p.DoneBytes), units.FormatBytes(p.TotalBytes), percent(p.DoneBytes, p.TotalBytes), units.FormatBytes(int64(rate)), eta,
		share(p.PeerBytes, p), share(p.OriginBytes, p), share(p.ReusedBytes, p))
}

// share is n's percentage of the bytes p has from any source.
func share(n int64, p *peerproto.Progress) int {
	return percent(n, p.PeerBytes+p.OriginBytes+p.ReusedBytes)
}

func percent(n, total int64) int {
	if total <= 0 {
		return 0
	}
	return int(n * 100 / total)
}

// progressBar draws p's done bytes as a bar (for terminals).
func progressBar(p *peerproto.Progress) string {
	bar := progressbar.NewOptions64(max(p.TotalBytes, 1),
		progressbar.OptionSetWriter(io.Discard), // taken as a string below
		progressbar.OptionSetWidth(barWidth),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionSetElapsedTime(false),
		progressbar.OptionSetRenderBlankState(true))
	bar.Set64(min(p.DoneBytes, max(p.TotalBytes, 1)))
	return strings.TrimSpace(strings.TrimPrefix(bar.String(), "\r"))
}

func writePeers(b *strings.Builder, peers []peerproto.PeerStatus, now time.Time) {
	if len(peers) == 0 {
		b.WriteString("peers: none seen\n")
		return
	}
	fmt.Fprintf(b, "peers (%d):\n", len(peers))
	tw := tabwriter.NewWriter(b, 0, 4, 2, ' ', 0)
	for _, p := range peers {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s", p.Addr, orDash(p.ID), p.Source, lastState(p, now))
		if note := peerNote(p, now); note != "" {
			fmt.Fprintf(tw, "\t%s", note)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

func lastState(p peerproto.PeerStatus, now time.Time) string {
	if p.LastState.IsZero() {
		return "no state yet"
	}
	return fmt.Sprintf("state %s ago, holds %d release(s)", ago(now, p.LastState), p.Releases)
}

func peerNote(p peerproto.PeerStatus, now time.Time) string {
	var notes []string
	if p.Foreign {
		notes = append(notes, "other fleet "+p.Fleet)
	}
	if p.Banned {
		notes = append(notes, fmt.Sprintf("banned for %s: %s", ago(p.BannedUntil, now), p.BanReason))
	}
	if p.Error != "" {
		notes = append(notes, "last error: "+p.Error)
	}
	return strings.Join(notes, "; ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ago is now - t rounded to the second, never negative.
func ago(now, t time.Time) time.Duration {
	return max(now.Sub(t), 0).Round(time.Second)
}
