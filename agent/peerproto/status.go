package peerproto

import (
	"time"
)

// The status API (docs/SPEC.md): GET /v1/status, readable by anyone who
// reaches the agent's listen address. These types are its wire form, used
// by the agent, fleetcast status and peers, and the fleet lab.

// SubscriptionStatus is what GET /v1/status reports of one subscription.
type SubscriptionStatus struct {
	Product           string    `json:"product"`
	Channel           string    `json:"channel"`
	TrustedSequence   uint64    `json:"trusted_sequence"`
	InstalledSequence uint64    `json:"installed_sequence"`
	InstalledVersion  string    `json:"installed_version"`
	FailedSequence    uint64    `json:"failed_sequence,omitempty"`
	LastCheck         time.Time `json:"last_check,omitzero"`
	LastOutcome       Outcome   `json:"last_outcome,omitempty"`
	LastError         string    `json:"last_error,omitempty"`
	// LastTransfer counts the bytes of the last release assembled, by source.
	LastTransfer         *Transfer `json:"last_transfer,omitempty"`
	LastTransferSequence uint64    `json:"last_transfer_sequence,omitempty"`
	// Progress is the update in progress; nil when idle.
	Progress *Progress `json:"progress,omitempty"`
}

// Status is the body of GET /v1/status.
type Status struct {
	AgentID        string               `json:"agent_id"`
	FleetID        string               `json:"fleet_id"`
	RootVersion    uint64               `json:"root_version"`
	OriginBytes    int64                `json:"origin_bytes"`    // all response bytes from the origin since start
	UploadedBytes  int64                `json:"uploaded_bytes"`  // chunk bytes served to peers since start
	UploadedChunks int64                `json:"uploaded_chunks"` // chunks served to peers since start
	Peers          []PeerStatus         `json:"peers"`
	Subscriptions  []SubscriptionStatus `json:"subscriptions"`
}

// PeerStatus is what GET /v1/status reports of one peer.
type PeerStatus struct {
	Addr        string    `json:"addr"`
	ID          string    `json:"id,omitempty"`
	Source      string    `json:"source"`
	Fleet       string    `json:"fleet_id,omitempty"`
	LastState   time.Time `json:"last_state,omitzero"`
	Banned      bool      `json:"banned"`
	BannedUntil time.Time `json:"banned_until,omitzero"`
	BanReason   string    `json:"ban_reason,omitempty"`
	Foreign     bool      `json:"other_fleet,omitempty"`
	Releases    int       `json:"releases"`
	Error       string    `json:"error,omitempty"` // why the last state request failed, until one is answered
}

// Progress is the update in progress for one subscription.
type Progress struct {
	Sequence    uint64    `json:"sequence"`
	Version     string    `json:"version"`
	Phase       string    `json:"phase"`        // "fetching" (chunks being fetched and verified), "installing"
	Started     time.Time `json:"started"`      // when fetching of this release began (this attempt)
	TotalBytes  int64     `json:"total_bytes"`  // artifact size
	DoneBytes   int64     `json:"done_bytes"`   // bytes verified and in place so far, from any source (reused, resumed, peers, origin)
	OriginBytes int64     `json:"origin_bytes"` // this attempt, chunk bytes from the origin
	PeerBytes   int64     `json:"peer_bytes"`   // this attempt, chunk bytes from peers
	ReusedBytes int64     `json:"reused_bytes"` // this attempt, bytes reused locally or resumed from an earlier attempt
	TotalChunks int       `json:"total_chunks"`
	DoneChunks  int       `json:"done_chunks"`
}

// Phases of an update in progress (Progress.Phase).
const (
	PhaseFetching   = "fetching"
	PhaseInstalling = "installing"
)

// Transfer counts where the bytes of a release came from.
type Transfer struct {
	Origin       int64 `json:"origin_bytes"`  // chunk bytes fetched from the origin
	OriginChunks int64 `json:"origin_chunks"` // chunks fetched from the origin
	Peer         int64 `json:"peer_bytes"`    // chunk bytes fetched from peers
	PeerChunks   int64 `json:"peer_chunks"`   // chunks fetched from peers
	PeerFailures int64 `json:"peer_failures"` // chunk requests to peers that failed
	// OriginReasons counts the chunks fetched from the origin by why they
	// were not fetched from a peer (docs/SPEC.md §8).
	OriginReasons map[string]int64 `json:"origin_reasons,omitempty"`
	Resumed       int64            `json:"resumed_bytes"`      // verified by an earlier, interrupted attempt
	ReusedLocal   int64            `json:"reused_local_bytes"` // copied from another release in the store (delta)
	Duplicate     int64            `json:"duplicate_bytes"`    // repeats of a chunk earlier in the same artifact
	Refetched     int64            `json:"refetched_chunks"`   // chunks fetched again after failing a re-check
	ArtifactBytes int64            `json:"artifact_bytes"`     // size of the artifact
	Seconds       float64          `json:"assemble_seconds"`   // wall time to assemble and check
}

// Outcome is how one subscription's update cycle ended.
type Outcome string

const (
	UpToDate     Outcome = "up-to-date"    // the latest release is installed
	Updated      Outcome = "updated"       // a newer release was installed
	KnownBad     Outcome = "known-bad"     // the latest release failed its health check, or was refused, before; waiting for a newer one
	Failed       Outcome = "failed"        // the cycle failed; see the error; tried again next cycle
	HealthFailed Outcome = "health-failed" // installed, failed its health check, rolled back; not tried again
	Refused      Outcome = "refused"       // refused by its installer before anything was switched (unsafe archive); not tried again until a newer sequence
	Deferred     Outcome = "deferred"      // waiting before retrying a release that did not fit on its target; see retry_after
)
