package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fleetcast/fleetcast/internal/atomicfile"
	"github.com/fleetcast/fleetcast/internal/strictjson"
	"github.com/fleetcast/fleetcast/signing"
)

// maxStateSize bounds a subscription's state file. saveState keeps what it
// writes well below it (maxValidator, maxFailedReason), so that nothing an
// origin or an installer says can make the file unreadable, which would stop
// the subscription and cost its rollback protection.
const maxStateSize = 64 << 10

// maxFailedReason bounds the failed_reason kept in the state file.
const maxFailedReason = 4 << 10

// subState is what the agent remembers of one subscription, in
// state/<product>/<channel>.json (docs/SPEC.md, "Agent data directory").
// Every change is written atomically before the step it allows.
type subState struct {
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
}

func statePath(dataDir, product, channel string) string {
	return filepath.Join(dataDir, "state", product, channel+".json")
}

func loadState(dataDir, product, channel string) (subState, error) {
	var st subState
	p := statePath(dataDir, product, channel)
	b, err := readLimited(p, maxStateSize)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("state: %w", err)
	}
	if err := strictjson.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("state %s: %w; move it away to start this subscription afresh (rollback protection is lost for it)", p, err)
	}
	return st, nil
}

func saveState(dataDir, product, channel string, st subState) error {
	p := statePath(dataDir, product, channel)
	if len(st.ETag) > maxValidator {
		st.ETag = ""
	}
	if len(st.LastModified) > maxValidator {
		st.LastModified = ""
	}
	if len(st.FailedReason) > maxFailedReason {
		st.FailedReason = strings.ToValidUTF8(st.FailedReason[:maxFailedReason], "") + "..."
	}
	if err := atomicfile.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(p, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// rootPath is where the agent keeps the newest root it rotated to.
func rootPath(dataDir string) string { return filepath.Join(dataDir, "root.json") }

// loadRoot returns the newer of the pinned root (config) and the root the
// agent rotated to earlier. The latter was verified through the chain when
// it was saved; the data directory is the agent's own.
func loadRoot(pinned, dataDir string) (*signing.Root, error) {
	b, err := readLimited(pinned, signing.MaxRootSize)
	if err != nil {
		return nil, fmt.Errorf("pinned root: %w", err)
	}
	root, _, err := signing.ParseRoot(b)
	if err != nil {
		return nil, fmt.Errorf("pinned root %s: %w", pinned, err)
	}
	b, err = readLimited(rootPath(dataDir), signing.MaxRootSize)
	if errors.Is(err, fs.ErrNotExist) {
		return root, nil
	}
	if err != nil {
		return nil, fmt.Errorf("rotated root: %w", err)
	}
	saved, _, err := signing.ParseRoot(b)
	if err != nil {
		return nil, fmt.Errorf("rotated root %s: %w", rootPath(dataDir), err)
	}
	if saved.Version > root.Version {
		return saved, nil
	}
	return root, nil
}

// saveRoot keeps the signed envelope of a root the agent rotated to.
func saveRoot(dataDir string, envelope []byte) error {
	return atomicfile.WriteFile(rootPath(dataDir), envelope, 0o644)
}

func removeIfExists(path string) error {
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
