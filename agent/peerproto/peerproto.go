// Package peerproto is the wire of fleetcast agents (docs/SPEC.md §8 and
// the status API): the peer protocol's name, headers, paths and limits, the
// peer state with its chunk bitmaps and its one parser, and the types of
// GET /v1/status. It imports nothing of the agent, so that status clients,
// the fleet lab and test peers speak the protocol without the agent's
// dependencies.
package peerproto

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/fleetcast/fleetcast/internal/clip"
	"github.com/fleetcast/fleetcast/manifest"
)

// The peer protocol (docs/SPEC.md §8): HTTP on the agent's listen address,
// HTTPS with mutual TLS when the fleet has a secret.
const (
	// Proto names the protocol version, in the mDNS TXT record and in
	// the header ProtoHeader of every peer response.
	Proto       = "fleetcast-peer/1"
	ProtoHeader = "Fleetcast-Peer"
	AgentHeader = "Fleetcast-Agent"
	FleetHeader = "Fleetcast-Fleet"

	StatePath = "/v1/peer/state"
	// WaitParam, on a state request with after=V, asks that it be held
	// that many seconds (1..MaxLongPoll) instead of LongPoll; older agents
	// ignore it.
	WaitParam = "wait"
	// QuietParam=1, on a state request with after=V, asks for 304 Not
	// Modified, without a body, when the version is still V at the end of
	// the wait, instead of the same state again; older agents ignore it.
	QuietParam   = "quiet"
	ManifestPath = "/v1/peer/manifest/" // {product}/{channel}/{sequence}
	ChunkPath    = "/v1/peer/chunk/"    // {sha256}
)

// Limits of the peer protocol.
const (
	// MaxState bounds a state response: 64 releases of 131072 chunks
	// take 64 × 2 bitmaps × 22 KiB of base64, under 3 MiB.
	MaxState = 4 << 20
	// MaxReleases bounds the releases one state lists.
	MaxReleases = 64
	// LongPoll is how long a state request with after= is held, in
	// seconds, unless it asks for another wait.
	LongPoll = 20
	// MaxLongPoll bounds the wait= a state request may ask for, in
	// seconds.
	MaxLongPoll = 120
	// IdlePoll is the wait= an agent asks of the peers it follows, in
	// seconds: an idle fleet's state feeds cost one small exchange per
	// follow each minute (see QuietParam).
	IdlePoll = 60
	// MaxFetching bounds the chunks a peer may claim to be fetching
	// from the origin at once: origin_connections is at most 64.
	MaxFetching = 64
)

// State is the body of GET /v1/peer/state.
type State struct {
	Proto    string        `json:"proto"`
	AgentID  string        `json:"agent_id"`
	FleetID  string        `json:"fleet_id"`
	Version  uint64        `json:"version"`
	Releases []ReleaseHave `json:"releases"`
	// Subscriptions are the product channels the agent follows: it will
	// take part in their next releases.
	Subscriptions []manifest.ChannelID `json:"subscriptions"`
}

// ReleaseHave is one release a peer holds and which of its chunks.
type ReleaseHave struct {
	manifest.ReleaseID
	Chunks int `json:"chunks"`
	// Have is a bitmap in standard base64: bit i%8 (least significant
	// first) of byte i/8 is set when chunk i is held and verified.
	Have string `json:"have"`
	// Fetching is a bitmap of the same form: the chunks the peer is
	// fetching from the origin now.
	Fetching string `json:"fetching"`
}

// EncodeBitmap encodes have as a bitmap (bit i%8, least significant
// first, of byte i/8), in standard base64.
func EncodeBitmap(have []bool) string {
	b := make([]byte, (len(have)+7)/8)
	for i, h := range have {
		if h {
			b[i/8] |= 1 << (i % 8)
		}
	}
	return base64.StdEncoding.EncodeToString(b)
}

// DecodeBitmap decodes a bitmap of n bits; bits past n must be zero.
func DecodeBitmap(s string, n int) ([]byte, error) {
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

// BitSet reports bit i of a bitmap; a nil bitmap has no bit set.
func BitSet(b []byte, i int) bool { return i/8 < len(b) && b[i/8]&(1<<(i%8)) != 0 }

// NewBits reports whether bitmap b has a bit set that a has not (bitmaps
// of another length: yes).
func NewBits(a, b []byte) bool {
	if len(a) != len(b) {
		return true
	}
	for i := range b {
		if b[i]&^a[i] != 0 {
			return true
		}
	}
	return false
}

// BitCount counts the bits set.
func BitCount(b []byte) int {
	n := 0
	for _, x := range b {
		n += bits.OnesCount8(x)
	}
	return n
}

// Bits are a release's decoded bitmaps.
type Bits struct {
	Have, Fetching []byte
}

// ParseState decodes and checks a state response: size, fields, names,
// bitmaps. It is the only parser of peer state; a peer is untrusted.
func ParseState(data []byte) (*State, []Bits, error) {
	if len(data) > MaxState {
		return nil, nil, fmt.Errorf("peer state: %d bytes, limit %d", len(data), MaxState)
	}
	var st State
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return nil, nil, fmt.Errorf("peer state: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errors.New("peer state: data after the JSON object")
	}
	if st.Proto != Proto {
		return nil, nil, fmt.Errorf("peer state: protocol %q, want %q", clip.String(st.Proto, 40), Proto)
	}
	if !ValidAgentID(st.AgentID) || !ValidFleetID(st.FleetID) {
		return nil, nil, fmt.Errorf("peer state: bad agent id %q or fleet id %q", clip.String(st.AgentID, 40), clip.String(st.FleetID, 40))
	}
	if len(st.Releases) > MaxReleases {
		return nil, nil, fmt.Errorf("peer state: %d releases, limit %d", len(st.Releases), MaxReleases)
	}
	if len(st.Subscriptions) > MaxReleases {
		return nil, nil, fmt.Errorf("peer state: %d subscriptions, limit %d", len(st.Subscriptions), MaxReleases)
	}
	for _, sub := range st.Subscriptions {
		if !manifest.ValidName(sub.Product) || !manifest.ValidName(sub.Channel) {
			return nil, nil, fmt.Errorf("peer state: bad subscription %q/%q", clip.String(sub.Product, 40), clip.String(sub.Channel, 40))
		}
	}
	maps := make([]Bits, len(st.Releases))
	for i, r := range st.Releases {
		if !manifest.ValidName(r.Product) || !manifest.ValidName(r.Channel) || r.Sequence == 0 {
			return nil, nil, fmt.Errorf("peer state: bad release %q/%q/%d", clip.String(r.Product, 40), clip.String(r.Channel, 40), r.Sequence)
		}
		if r.Chunks < 1 || r.Chunks > manifest.MaxChunks {
			return nil, nil, fmt.Errorf("peer state: release %s/%s/%d: %d chunks", r.Product, r.Channel, r.Sequence, r.Chunks)
		}
		have, err := DecodeBitmap(r.Have, r.Chunks)
		if err != nil {
			return nil, nil, fmt.Errorf("peer state: release %s/%s/%d: have: %w", r.Product, r.Channel, r.Sequence, err)
		}
		fetching, err := DecodeBitmap(r.Fetching, r.Chunks)
		if err != nil {
			return nil, nil, fmt.Errorf("peer state: release %s/%s/%d: fetching: %w", r.Product, r.Channel, r.Sequence, err)
		}
		if n := BitCount(fetching); n > MaxFetching {
			return nil, nil, fmt.Errorf("peer state: release %s/%s/%d: fetching %d chunks at once, more than %d", r.Product, r.Channel, r.Sequence, n, MaxFetching)
		}
		maps[i] = Bits{Have: have, Fetching: fetching}
	}
	return &st, maps, nil
}

// ValidAgentID: 16 lowercase hex digits.
func ValidAgentID(s string) bool {
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

// ValidFleetID: an agent id's form, or "open" for a fleet without a secret.
func ValidFleetID(s string) bool { return s == "open" || ValidAgentID(s) }
