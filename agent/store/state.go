package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/fleetcast/fleetcast/internal/atomicfile"
	"github.com/fleetcast/fleetcast/internal/clip"
	"github.com/fleetcast/fleetcast/internal/strictjson"
	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/signing"
)

// MaxStateSize bounds a subscription's state file. SaveState keeps what it
// writes well below it (maxValidator, maxFailedReason, maxRetryReason: even
// if JSON escapes every byte in 6, about 43 KiB), so that nothing an origin
// or an installer says can make the file unreadable, which would stop the
// subscription and cost its rollback protection.
const MaxStateSize = 64 << 10

// MaxValidator bounds the ETag and Last-Modified kept in the state file (read
// back with maxStateSize). A longer one is treated as absent: the next poll
// fetches the manifest whole.
const MaxValidator = 1 << 10

// MaxFailedReason bounds the failed_reason kept in the state file.
const MaxFailedReason = 4 << 10

// MaxRetryReason bounds the retry_reason kept in the state file.
const MaxRetryReason = 1 << 10

// A release that did not fit on its target's file system is tried again
// after a backoff: max(poll_interval, minNoSpaceBackoff), doubled with each
// attempt that failed so, up to maxNoSpaceBackoff (or poll_interval, if
// longer). Each attempt writes up to the free space, and removes it again.
const (
	MinNoSpaceBackoff = time.Minute
	MaxNoSpaceBackoff = 6 * time.Hour
)

// State is what the agent remembers of one subscription, in
// state/<product>/<channel>.json (docs/SPEC.md, "Agent data directory").
// Every change is written atomically before the step it allows.
type State struct {
	// Trusted is the highest sequence ever verified for the channel. A
	// manifest below it is a rollback attempt, and never installed.
	Trusted uint64 `json:"trusted_sequence"`
	// Installed is the sequence and version installed and healthy.
	Installed        uint64 `json:"installed_sequence"`
	InstalledVersion string `json:"installed_version"`
	// Failed is a sequence whose health check failed: it was rolled back and
	// is not tried again; a newer sequence is.
	Failed       uint64 `json:"failed_sequence"`
	FailedReason string `json:"failed_reason"`
	// ETag and LastModified validate the conditional GET of the channel's
	// latest manifest; they are saved once that manifest was handled.
	ETag         string `json:"etag"`
	LastModified string `json:"last_modified"`
	// RetrySequence is a sequence that did not fit on its target's file
	// system: it is not installed again before RetryAfter. RetryCount
	// counts its attempts that failed so, RetryReason is the last one's
	// error. A newer sequence, or installing this one, clears them. They
	// are left out while zero, so that such a file is as older agents
	// wrote it and read it.
	RetrySequence uint64    `json:"retry_sequence,omitzero"`
	RetryAfter    time.Time `json:"retry_after,omitzero"`
	RetryCount    int       `json:"retry_count,omitzero"`
	RetryReason   string    `json:"retry_reason,omitzero"`
}

// NoSpaceBackoff is how long a release waits after its attempts-th failed
// attempt for want of space, with the agent polling every poll.
func NoSpaceBackoff(poll time.Duration, attempts int) time.Duration {
	d := max(poll, MinNoSpaceBackoff)
	limit := max(MaxNoSpaceBackoff, d)
	for i := 1; i < attempts && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// NoSpace records that sequence seq did not fit, at now, for reason: it
// waits for a backoff that doubles with each such attempt at seq.
func (st *State) NoSpace(seq uint64, reason string, now time.Time, poll time.Duration) {
	if st.RetrySequence != seq || st.RetryCount < 0 {
		st.RetryCount = 0
	}
	st.RetrySequence, st.RetryReason = seq, reason
	st.RetryCount++
	st.RetryAfter = now.Add(NoSpaceBackoff(poll, st.RetryCount)).UTC()
}

// Waiting reports whether seq did not fit before and must wait still at now.
func (st *State) Waiting(seq uint64, now time.Time) bool {
	return st.RetrySequence == seq && now.Before(st.RetryAfter)
}

// ClearRetry forgets a release that did not fit: it was installed, or a
// newer one was trusted.
func (st *State) ClearRetry() {
	st.RetrySequence, st.RetryAfter, st.RetryCount, st.RetryReason = 0, time.Time{}, 0, ""
}

// StatePath is the path of a channel's state file.
func StatePath(dataDir string, ch manifest.ChannelID) string {
	return filepath.Join(dataDir, "state", ch.Product, ch.Channel+".json")
}

// LoadState reads a channel's state file; a channel without one has the
// zero State.
func LoadState(dataDir string, ch manifest.ChannelID) (State, error) {
	p := StatePath(dataDir, ch)
	b, err := ReadLimited(p, MaxStateSize)
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("state: %w", err)
	}
	st, err := DecodeState(b)
	if err != nil {
		return st, fmt.Errorf("state %s: %w; move it away to start this subscription afresh (rollback protection is lost for it)", p, err)
	}
	return st, nil
}

// DecodeState parses a state file strictly (docs/SPEC.md, §0). Fields
// missing from it are zero: files of older agents lack the retry fields.
func DecodeState(b []byte) (State, error) {
	var st State
	err := strictjson.Unmarshal(b, &st)
	return st, err
}

// SaveState writes a channel's state file atomically.
func SaveState(dataDir string, ch manifest.ChannelID, st State) error {
	p := StatePath(dataDir, ch)
	b, err := EncodeState(st)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := atomicfile.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := atomicfile.WriteFile(p, b, 0o644); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// EncodeState returns the state file's bytes, with what the state file does
// not keep dropped or cut (bounded).
func EncodeState(st State) ([]byte, error) {
	b, err := json.MarshalIndent(st.bounded(), "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// bounded returns st as SaveState keeps it: validators longer than
// maxValidator dropped, reasons cut.
func (st State) bounded() State {
	if len(st.ETag) > MaxValidator {
		st.ETag = ""
	}
	if len(st.LastModified) > MaxValidator {
		st.LastModified = ""
	}
	st.FailedReason = clip.String(st.FailedReason, MaxFailedReason)
	st.RetryReason = clip.String(st.RetryReason, MaxRetryReason)
	return st
}

// RootPath is where the agent keeps the newest root it rotated to.
func RootPath(dataDir string) string { return filepath.Join(dataDir, "root.json") }

// LoadRoot returns the newer of the pinned root (config) and the root the
// agent rotated to earlier. The latter was verified through the chain when
// it was saved; the data directory is the agent's own.
func LoadRoot(pinned, dataDir string) (*signing.Root, error) {
	b, err := ReadLimited(pinned, signing.MaxRootSize)
	if err != nil {
		return nil, fmt.Errorf("pinned root: %w", err)
	}
	root, _, err := signing.ParseRoot(b)
	if err != nil {
		return nil, fmt.Errorf("pinned root %s: %w", pinned, err)
	}
	saved, err := ReadRotatedRoot(dataDir)
	if err != nil {
		return nil, fmt.Errorf("rotated root %s: %w; %s", RootPath(dataDir), err, rotatedRootAdvice(pinned, root.Version))
	}
	if saved != nil && saved.Version > root.Version {
		return saved, nil
	}
	return root, nil
}

// ReadRotatedRoot returns the root saved in data_dir/root.json, or nil if
// there is none.
func ReadRotatedRoot(dataDir string) (*signing.Root, error) {
	b, err := ReadLimited(RootPath(dataDir), signing.MaxRootSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r, _, err := signing.ParseRoot(b)
	return r, err
}

// rotatedRootAdvice tells an operator how to recover from an unreadable
// data_dir/root.json, and what that costs.
func rotatedRootAdvice(pinned string, version uint64) string {
	return fmt.Sprintf("it is the agent's copy of the newest trust root it rotated to: move it away (or restore it from a backup) "+
		"and start the agent again. It then starts from the pinned root (config key root: %s, version %d) and follows the "+
		"rotations again from the origin with its next manifest; until then it trusts that root's keys, which a rotation may "+
		"have retired. Nothing else is lost. If the pinned root has expired, replace that file with the newest root, as at setup",
		pinned, version)
}

// SaveRoot keeps the signed envelope of a root the agent rotated to.
func SaveRoot(dataDir string, envelope []byte) error {
	return atomicfile.WriteFile(RootPath(dataDir), envelope, 0o644)
}
