package installers

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fleetcast/fleetcast/internal/boundedfile"
	"github.com/fleetcast/fleetcast/internal/clip"

	"github.com/fleetcast/fleetcast/internal/atomicfile"
	"github.com/fleetcast/fleetcast/internal/strictjson"
	"github.com/fleetcast/fleetcast/manifest"
)

// archiveStateName, in StateDir, records what the archive installer made
// under its target: only these directories are ever pruned or replaced.
const archiveStateName = "archive.json"

// Bounds of the archive installer's state file.
const (
	maxArchiveStateSize = 64 << 10
	maxArchiveRecorded  = 256 // release directories, and staging directories, each
)

// errArchiveState is wrapped by parseArchiveState's errors.
var errArchiveState = errors.New("archive installer state")

// archiveState is the archive installer's record of one subscription's
// target (docs/INSTALLERS.md): the release directories it unpacked there,
// oldest first, and the staging directories it created and has not yet
// renamed or removed. A name is recorded before the directory is made, so
// a crash leaves at worst a recorded name with no directory.
type archiveState struct {
	Target   string   `json:"target"`
	Releases []string `json:"releases,omitempty"`
	Staging  []string `json:"staging,omitempty"`
}

// parseArchiveState decodes and checks a state file.
func parseArchiveState(b []byte) (*archiveState, error) {
	if len(b) > maxArchiveStateSize {
		return nil, fmt.Errorf("%w: more than %d bytes", errArchiveState, maxArchiveStateSize)
	}
	var st archiveState
	if err := strictjson.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%w: %v", errArchiveState, err)
	}
	if err := st.check(); err != nil {
		return nil, fmt.Errorf("%w: %v", errArchiveState, err)
	}
	return &st, nil
}

// check refuses a state that names what the installer never records.
func (st *archiveState) check() error {
	if !filepath.IsAbs(st.Target) || filepath.Clean(st.Target) != st.Target {
		return fmt.Errorf("target %q is not a clean absolute path", clip.String(st.Target, 200))
	}
	if len(st.Releases) > maxArchiveRecorded || len(st.Staging) > maxArchiveRecorded {
		return fmt.Errorf("more than %d names recorded", maxArchiveRecorded)
	}
	for i, v := range st.Releases {
		if !manifest.ValidVersion(v) || slices.Contains(st.Releases[:i], v) {
			return fmt.Errorf("release %q is not a valid version, or is recorded twice", clip.String(v, 200))
		}
	}
	for _, s := range st.Staging {
		if !isStagingName(s) {
			return fmt.Errorf("staging name %q is not one the installer makes", clip.String(s, 200))
		}
	}
	return nil
}

// stagingName is the name of a release being unpacked: .<version>.tmp-<rnd>.
func stagingName(version, rnd string) string { return "." + version + releaseTmpInfix + rnd }

// isStagingName reports whether s is a name stagingName makes.
func isStagingName(s string) bool {
	v, rnd, ok := strings.Cut(strings.TrimPrefix(s, "."), releaseTmpInfix)
	return ok && strings.HasPrefix(s, ".") && manifest.ValidVersion(v) && rnd != "" &&
		!strings.ContainsFunc(rnd, func(r rune) bool { return !('A' <= r && r <= 'Z' || '0' <= r && r <= '9') })
}

// loadArchiveState reads the state of target from dir, or an empty one if
// there is none or it is of another target (a subscription whose target
// moved starts afresh there; the old target's directories stay, unpruned).
func loadArchiveState(dir, target string) (*archiveState, error) {
	p := filepath.Join(dir, archiveStateName)
	b, err := boundedfile.Read(p, maxArchiveStateSize)
	if errors.Is(err, fs.ErrNotExist) {
		return &archiveState{Target: target}, nil
	}
	if err != nil {
		return nil, err
	}
	st, err := parseArchiveState(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w; move it away to go on (release directories it recorded will no longer be pruned)", p, err)
	}
	if st.Target != target {
		return &archiveState{Target: target}, nil
	}
	return st, nil
}

// save writes the state atomically into dir.
func (st *archiveState) save(dir string) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, archiveStateName), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save archive installer state: %w", err)
	}
	return nil
}

// has reports whether version's release directory was made by fleetcast.
func (st *archiveState) has(version string) bool { return slices.Contains(st.Releases, version) }

// addRelease records version as the newest release directory.
func (st *archiveState) addRelease(version string) {
	st.Releases = append(slices.DeleteFunc(st.Releases, func(v string) bool { return v == version }), version)
	if n := len(st.Releases) - maxArchiveRecorded; n > 0 {
		st.Releases = st.Releases[n:] // forgotten, never pruned: far beyond any keep_releases
	}
}

// dropRelease forgets version.
func (st *archiveState) dropRelease(version string) {
	st.Releases = slices.DeleteFunc(st.Releases, func(v string) bool { return v == version })
}
