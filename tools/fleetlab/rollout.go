//go:build linux

package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/bits"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fleetcast/fleetcast/agent/peerproto"
)

// watch is what a scenario does while a rollout runs: tick is called after
// every round of status reads with the time since the rollout started; note
// says afterwards what it did, for the report.
type watch interface {
	tick(ctx context.Context, f *fleet, since time.Duration) error
	note(f *fleet) string
}

// rollout waits until every agent of agents has installed seq, reading their
// status every pollStatus, and returns when each did, measured from start.
// It gives up after rolloutTimeout: a rollout that slow has failed.
func (f *fleet) rollout(ctx context.Context, agents []*labAgent, seq uint64, start time.Time, w watch) (map[*labAgent]time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, f.o.rolloutTimeout())
	defer cancel()
	done := map[*labAgent]time.Duration{}
	for len(done) < len(agents) {
		for _, a := range agents {
			if _, ok := done[a]; ok || a.done == nil {
				continue // finished, or stopped by the scenario
			}
			if err := a.running(); err != nil {
				return done, err
			}
			if f.status(ctx, a) && a.installed() >= seq {
				done[a] = time.Since(start)
				f.e.log.Info("agent installed", a.logAttrs(), "sequence", seq, "after", done[a].Round(time.Millisecond))
			}
		}
		if w != nil {
			if err := w.tick(ctx, f, time.Since(start)); err != nil {
				return done, err
			}
		}
		if len(done) == len(agents) {
			break
		}
		if err := sleep(ctx, pollStatus); err != nil {
			return done, fmt.Errorf("%d of %d agents installed sequence %d within %s: %w", len(done), len(agents), seq, f.o.rolloutTimeout(), err)
		}
	}
	return done, nil
}

// results turns a rollout into per-host results, checking each agent's
// installed file against want (the artifact's SHA-256).
func (f *fleet) results(agents []*labAgent, done map[*labAgent]time.Duration, seq uint64, want [32]byte) ([]hostResult, []string) {
	var out []hostResult
	var problems []string
	for _, a := range agents {
		r := hostResult{Host: a.host.Name(), Done: done[a], OriginBytes: -1, PeerBytes: -1, PeakRSS: a.peakRSS, CPU: a.cpu}
		if tr := a.transfer(seq); tr != nil {
			r.OriginBytes, r.PeerBytes, r.ReusedBytes = tr.Origin, tr.Peer, tr.ReusedLocal+tr.Resumed
		}
		if r.Done == 0 {
			r.Err = "not installed"
		} else if got, err := fileSHA256(filepath.Join(a.dir, "target", "app")); err != nil || got != want {
			r.Err = fmt.Sprintf("installed file is not the release (sha256 %x, err %v)", got, err)
			r.Done = 0
		}
		if r.Err != "" {
			problems = append(problems, a.host.Name()+": "+r.Err)
		}
		out = append(out, r)
	}
	return out, problems
}

func fileSHA256(path string) ([32]byte, error) {
	var sum [32]byte
	file, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer file.Close()
	h := sha256.New()
	if _, err := io.Copy(h, file); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// bans lists, for the problems column, which agents banned which peers.
func (f *fleet) bans() []string {
	var out []string
	for _, a := range f.agents {
		for _, p := range a.st.Peers {
			if p.Banned {
				out = append(out, fmt.Sprintf("%s banned %s (%s)", a.host.Name(), p.Addr, firstLine(p.BanReason)))
			}
		}
	}
	return out
}

// firstLine shortens a ban reason to its first line, without the request URL.
func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if i := strings.LastIndex(s, ": "); strings.HasPrefix(s, "fetch ") && i > 0 {
		s = s[i+2:]
	}
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}

// union counts the chunks of the release being rolled out that at least one
// agent holds, from the agents' peer state (read as a fleet member), and the
// release's chunk count; 0, 0 before any agent has the manifest.
func (f *fleet) union(ctx context.Context) (have, total int) {
	var all []byte
	for _, a := range f.agents {
		if a.done == nil {
			continue
		}
		st, maps, err := f.peerState(ctx, a)
		if err != nil {
			continue
		}
		for i, r := range st.Releases {
			if r.Sequence != uint64(f.seq) || r.Product != labProduct {
				continue
			}
			total = r.Chunks
			if all == nil {
				all = make([]byte, len(maps[i].Have))
			}
			for j := range min(len(all), len(maps[i].Have)) {
				all[j] |= maps[i].Have[j]
			}
		}
	}
	for _, b := range all {
		have += bits.OnesCount8(b)
	}
	return have, total
}

// peerState reads the agent's peer state without waiting for news.
func (f *fleet) peerState(ctx context.Context, a *labAgent) (*peerproto.State, []peerproto.Bits, error) {
	url := f.scheme + "://" + net.JoinHostPort(a.host.IP(), agentPort) + "/v1/peer/state"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, peerproto.MaxState+1))
	if err != nil {
		return nil, nil, err
	}
	return peerproto.ParseState(body)
}
