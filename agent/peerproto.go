package agent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strings"

	"github.com/fleetcast/fleetcast/manifest"
)

// The peer protocol (docs/SPEC.md §8): HTTP on the agent's listen address,
// HTTPS with mutual TLS when the fleet has a secret.
const (
	// PeerProto names the protocol version, in the mDNS TXT record and in
	// the header PeerProtoHeader of every peer response.
	PeerProto       = "fleetcast-peer/1"
	PeerProtoHeader = "Fleetcast-Peer"
	peerAgentHeader = "Fleetcast-Agent"
	peerFleetHeader = "Fleetcast-Fleet"

	peerStatePath    = "/v1/peer/state"
	peerManifestPath = "/v1/peer/manifest/" // {product}/{channel}/{sequence}
	peerChunkPath    = "/v1/peer/chunk/"    // {sha256}
)

// Limits of the peer protocol.
const (
	// MaxPeerState bounds a state response: 64 releases of 131072 chunks
	// take 64 × 2 bitmaps × 22 KiB of base64, under 3 MiB.
	MaxPeerState = 4 << 20
	// maxPeerReleases bounds the releases one state lists.
	maxPeerReleases = 64
	// peerLongPoll is how long a state request with after= is held.
	peerLongPoll = 20
	// maxPeerFetching bounds the chunks a peer may claim to be fetching
	// from the origin at once: origin_connections is at most 64.
	maxPeerFetching = 64
)

// PeerState is the body of GET /v1/peer/state.
type PeerState struct {
	Proto    string        `json:"proto"`
	AgentID  string        `json:"agent_id"`
	FleetID  string        `json:"fleet_id"`
	Version  uint64        `json:"version"`
	Releases []ReleaseHave `json:"releases"`
	// Subscriptions are the product channels the agent follows: it will
	// take part in their next releases.
	Subscriptions []PeerSub `json:"subscriptions"`
}

// PeerSub is a product channel an agent follows.
type PeerSub struct {
	Product string `json:"product"`
	Channel string `json:"channel"`
}

// ReleaseHave is one release a peer holds and which of its chunks.
type ReleaseHave struct {
	Product  string `json:"product"`
	Channel  string `json:"channel"`
	Sequence uint64 `json:"sequence"`
	Chunks   int    `json:"chunks"`
	// Have is a bitmap in standard base64: bit i%8 (least significant
	// first) of byte i/8 is set when chunk i is held and verified.
	Have string `json:"have"`
	// Fetching is a bitmap of the same form: the chunks the peer is
	// fetching from the origin now.
	Fetching string `json:"fetching"`
}

func encodeBitmap(have []bool) string {
	b := make([]byte, (len(have)+7)/8)
	for i, h := range have {
		if h {
			b[i/8] |= 1 << (i % 8)
		}
	}
	return base64.StdEncoding.EncodeToString(b)
}

// decodeBitmap decodes a bitmap of n bits; bits past n must be zero.
func decodeBitmap(s string, n int) ([]byte, error) {
	want := (n + 7) / 8
	if base64.StdEncoding.EncodedLen(want) != len(s) {
		return nil, fmt.Errorf("bitmap of %d chunks: %d base64 characters, want %d", n, len(s), base64.StdEncoding.EncodedLen(want))
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != want {
		return nil, fmt.Errorf("bitmap of %d chunks: not base64 of %d bytes", n, want)
	}
	if n%8 != 0 && b[len(b)-1]>>(n%8) != 0 {
		return nil, errors.New("bitmap: bits set past the last chunk")
	}
	return b, nil
}

// bitSet reports bit i of a bitmap; a nil bitmap has no bit set.
func bitSet(b []byte, i int) bool { return i/8 < len(b) && b[i/8]&(1<<(i%8)) != 0 }

// bitCount counts the bits set.
func bitCount(b []byte) int {
	n := 0
	for _, x := range b {
		n += bits.OnesCount8(x)
	}
	return n
}

// PeerBits are a release's decoded bitmaps.
type PeerBits struct {
	Have, Fetching []byte
}

// ParsePeerState decodes and checks a state response: size, fields, names,
// bitmaps. It is the only parser of peer state; a peer is untrusted.
func ParsePeerState(data []byte) (*PeerState, []PeerBits, error) {
	if len(data) > MaxPeerState {
		return nil, nil, fmt.Errorf("peer state: %d bytes, limit %d", len(data), MaxPeerState)
	}
	var st PeerState
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return nil, nil, fmt.Errorf("peer state: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errors.New("peer state: data after the JSON object")
	}
	if st.Proto != PeerProto {
		return nil, nil, fmt.Errorf("peer state: protocol %q, want %q", clip(st.Proto), PeerProto)
	}
	if !validAgentID(st.AgentID) || !validFleetID(st.FleetID) {
		return nil, nil, fmt.Errorf("peer state: bad agent id %q or fleet id %q", clip(st.AgentID), clip(st.FleetID))
	}
	if len(st.Releases) > maxPeerReleases {
		return nil, nil, fmt.Errorf("peer state: %d releases, limit %d", len(st.Releases), maxPeerReleases)
	}
	if len(st.Subscriptions) > maxPeerReleases {
		return nil, nil, fmt.Errorf("peer state: %d subscriptions, limit %d", len(st.Subscriptions), maxPeerReleases)
	}
	for _, sub := range st.Subscriptions {
		if !manifest.ValidName(sub.Product) || !manifest.ValidName(sub.Channel) {
			return nil, nil, fmt.Errorf("peer state: bad subscription %q/%q", clip(sub.Product), clip(sub.Channel))
		}
	}
	maps := make([]PeerBits, len(st.Releases))
	for i, r := range st.Releases {
		if !manifest.ValidName(r.Product) || !manifest.ValidName(r.Channel) || r.Sequence == 0 {
			return nil, nil, fmt.Errorf("peer state: bad release %q/%q/%d", clip(r.Product), clip(r.Channel), r.Sequence)
		}
		if r.Chunks < 1 || r.Chunks > manifest.MaxChunks {
			return nil, nil, fmt.Errorf("peer state: release %s/%s/%d: %d chunks", r.Product, r.Channel, r.Sequence, r.Chunks)
		}
		have, err := decodeBitmap(r.Have, r.Chunks)
		if err != nil {
			return nil, nil, fmt.Errorf("peer state: release %s/%s/%d: have: %w", r.Product, r.Channel, r.Sequence, err)
		}
		fetching, err := decodeBitmap(r.Fetching, r.Chunks)
		if err != nil {
			return nil, nil, fmt.Errorf("peer state: release %s/%s/%d: fetching: %w", r.Product, r.Channel, r.Sequence, err)
		}
		if n := bitCount(fetching); n > maxPeerFetching {
			return nil, nil, fmt.Errorf("peer state: release %s/%s/%d: fetching %d chunks at once, more than %d", r.Product, r.Channel, r.Sequence, n, maxPeerFetching)
		}
		maps[i] = PeerBits{Have: have, Fetching: fetching}
	}
	return &st, maps, nil
}

// validAgentID: 16 lowercase hex digits.
func validAgentID(s string) bool {
	if len(s) != 16 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// validFleetID: an agent id's form, or "open" for a fleet without a secret.
func validFleetID(s string) bool { return s == "open" || validAgentID(s) }

func clip(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
