package statusclient

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/internal/units"
)

// Summary is the rollout of one product channel across the agents gathered.
type Summary struct {
	Product string `json:"product"`
	Channel string `json:"channel"`
	// Agents counts the agents that answered and follow the channel.
	Agents int `json:"agents"`
	// Sequence is the highest installed sequence among them, Version its
	// version, OnSequence how many agents have it installed.
	Sequence   uint64 `json:"sequence"`
	Version    string `json:"version"`
	OnSequence int    `json:"on_sequence"`
	// Updating counts the agents with an update of the channel in progress.
	Updating int `json:"updating"`
	// Unreachable counts the agents that did not answer, whatever they follow.
	Unreachable int `json:"unreachable"`
	// Bytes of the current transfer of each agent, else of its last one.
	Bytes Bytes `json:"bytes"`
}

// Bytes counts the bytes of a transfer by where they came from.
type Bytes struct {
	Origin int64 `json:"origin"`
	Peers  int64 `json:"peers"`
	// Reused bytes were not fetched by this transfer: copied from another
	// release, repeated within the artifact, or kept from an interrupted try.
	Reused int64 `json:"reused"`
}

func (b *Bytes) add(o Bytes) {
	b.Origin += o.Origin
	b.Peers += o.Peers
	b.Reused += o.Reused
}

// TransferBytes returns the bytes of s's update in progress, or else of its
// last transfer; zero when there was none.
func TransferBytes(s peerproto.SubscriptionStatus) Bytes {
	if p := s.Progress; p != nil {
		return Bytes{Origin: p.OriginBytes, Peers: p.PeerBytes, Reused: p.ReusedBytes}
	}
	if t := s.LastTransfer; t != nil {
		return Bytes{Origin: t.Origin, Peers: t.Peer, Reused: t.ReusedLocal + t.Duplicate + t.Resumed}
	}
	return Bytes{}
}

// Summarize sums results up per product channel, sorted by product, then
// channel.
func Summarize(results []Result) []Summary {
	byKey := map[[2]string]*Summary{}
	unreachable := 0
	for _, r := range results {
		if r.Status == nil {
			unreachable++
			continue
		}
		for _, s := range r.Status.Subscriptions {
			k := [2]string{s.Product, s.Channel}
			if byKey[k] == nil {
				byKey[k] = &Summary{Product: s.Product, Channel: s.Channel}
			}
			byKey[k].add(s)
		}
	}
	out := make([]Summary, 0, len(byKey))
	for _, sum := range byKey {
		sum.Unreachable = unreachable
		out = append(out, *sum)
	}
	slices.SortFunc(out, func(a, b Summary) int {
		return cmp.Or(cmp.Compare(a.Product, b.Product), cmp.Compare(a.Channel, b.Channel))
	})
	return out
}

// add counts one agent's subscription status.
func (sum *Summary) add(s peerproto.SubscriptionStatus) {
	sum.Agents++
	switch {
	case s.InstalledSequence > sum.Sequence:
		sum.Sequence, sum.Version, sum.OnSequence = s.InstalledSequence, s.InstalledVersion, 1
	case s.InstalledSequence == sum.Sequence:
		sum.OnSequence++
	}
	if s.Progress != nil {
		sum.Updating++
	}
	sum.Bytes.add(TransferBytes(s))
}

// String is the summary line: "app/stable: 4 of 5 agents on sequence 7
// (1.2.0); 1 updating; bytes from origin 32.0 MiB, from peers 96.0 MiB,
// reused 0 B", and "; 1 unreachable" when some agents did not answer.
func (sum Summary) String() string {
	on := fmt.Sprintf("%d of %d agents on sequence %d (%s)", sum.OnSequence, sum.Agents, sum.Sequence, sum.Version)
	if sum.Sequence == 0 {
		on = fmt.Sprintf("%d agents, none with a release installed", sum.Agents)
	}
	line := fmt.Sprintf("%s/%s: %s; %d updating; bytes from origin %s, from peers %s, reused %s",
		sum.Product, sum.Channel, on, sum.Updating,
		units.FormatBytes(sum.Bytes.Origin), units.FormatBytes(sum.Bytes.Peers), units.FormatBytes(sum.Bytes.Reused))
	if sum.Unreachable > 0 {
		line += fmt.Sprintf("; %d unreachable", sum.Unreachable)
	}
	return line
}
