package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/fleetcast/fleetcast/internal/units"

	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/agent/statusclient"
)

func cmdPeers(args []string, env *cliEnv) error {
	fset := newFlagSet("peers", "fleetcast peers [--config FILE | --addr HOST:PORT] [--json] [--timeout 3s]\n\n"+
		"Shows a rollout across the LAN: asks the local agent for the peers it knows, asks each of them\n"+
		"for its status, and prints one row per agent and a summary per product channel.\n"+
		"Example: fleetcast peers --config /etc/fleetcast/agent.toml", env.stderr)
	tf := addTargetFlags(fset)
	asJSON := fset.Bool("json", false, `print {"agents": [{addr, status | error}], "summary": [...]} as JSON`)
	timeout := fset.Duration("timeout", statusclient.DefaultTimeout, "time allowed to each agent's answer")
	if err := parse(fset, args); err != nil {
		return err
	}
	if fset.NArg() != 0 || *timeout <= 0 {
		return usagef("want no arguments and a positive --timeout")
	}
	addr, client, err := tf.resolve()
	if err != nil {
		return err
	}
	client.Timeout = *timeout
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	results, err := statusclient.GatherFleet(ctx, client, addr)
	if err != nil {
		return hintAgent(err)
	}
	if *asJSON {
		return writePeersJSON(env.stdout, results)
	}
	_, err = io.WriteString(env.stdout, formatFleet(results))
	return err
}

// fleetJSON is fleetcast peers --json.
type fleetJSON struct {
	Agents  []statusclient.Result  `json:"agents"`
	Summary []statusclient.Summary `json:"summary"`
}

func writePeersJSON(w io.Writer, results []statusclient.Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(fleetJSON{Agents: results, Summary: statusclient.Summarize(results)})
}

// formatFleet renders one row per agent and subscription, then the summary
// lines.
func formatFleet(results []statusclient.Result) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AGENT\tADDR\tCHANNEL\tINSTALLED\tPROGRESS\tFROM ORIGIN\tFROM PEERS")
	for _, r := range results {
		writeAgentRows(tw, r)
	}
	tw.Flush()
	b.WriteString("\n")
	for _, s := range statusclient.Summarize(results) {
		fmt.Fprintln(&b, s)
	}
	return b.String()
}

func writeAgentRows(w io.Writer, r statusclient.Result) {
	if r.Err != nil {
		fmt.Fprintf(w, "-\t%s\tunreachable: %v\n", r.Addr, r.Err) // last cell: no column to widen
		return
	}
	if len(r.Status.Subscriptions) == 0 {
		fmt.Fprintf(w, "%s\t%s\tno subscriptions\n", r.Status.AgentID, r.Addr)
	}
	for _, s := range r.Status.Subscriptions {
		by := statusclient.TransferBytes(s)
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Status.AgentID, r.Addr, subKey(s), installed(s),
			progressCell(s.Progress), units.FormatBytes(by.Origin), units.FormatBytes(by.Peers))
	}
}

func installed(s peerproto.SubscriptionStatus) string {
	if s.InstalledSequence == 0 {
		return "none"
	}
	return fmt.Sprintf("%s (seq %d)", s.InstalledVersion, s.InstalledSequence)
}

// progressCell is "idle" or "39% of 1.3 (seq 8)".
func progressCell(p *peerproto.Progress) string {
	if p == nil {
		return "idle"
	}
	return fmt.Sprintf("%d%% of %s (seq %d)", percent(p.DoneBytes, p.TotalBytes), p.Version, p.Sequence)
}
