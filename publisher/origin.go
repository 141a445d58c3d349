package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/fleetcast/fleetcast/internal/atomicfile"
	"github.com/fleetcast/fleetcast/internal/strictjson"
	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/signing"
)

// Origin is an origin mirror directory laid out as docs/SPEC.md describes,
// ready to be served by any static HTTP server.
type Origin struct {
	Dir string
}

func (o Origin) path(rel string) string { return filepath.Join(o.Dir, filepath.FromSlash(rel)) }

func (o Origin) readFile(rel string, limit int64) ([]byte, error) {
	f, err := os.Open(o.path(rel))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return strictjson.ReadAll(f, limit, signing.ErrTooLarge)
}

func (o Origin) writeFile(rel string, data []byte) error {
	p := o.path(rel)
	if err := atomicfile.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(p, data, 0o644)
}

// rootVersions lists the root versions present under roots/, ascending.
func (o Origin) rootVersions() ([]uint64, error) {
	entries, err := os.ReadDir(o.path(manifest.RootsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var vs []uint64
	for _, e := range entries {
		if v, err := strconv.ParseUint(strings.TrimSuffix(e.Name(), ".root.json"), 10, 64); err == nil && strings.HasSuffix(e.Name(), ".root.json") {
			vs = append(vs, v)
		}
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i] < vs[j] })
	return vs, nil
}

// Root returns the newest root of the origin's chain, verified link by link
// from the oldest root present. It returns (nil, nil) when the origin has no
// root yet.
func (o Origin) Root(ctx context.Context) (*signing.Root, error) {
	vs, err := o.rootVersions()
	if err != nil || len(vs) == 0 {
		return nil, err
	}
	first, err := o.readFile(manifest.RootPath(vs[0]), signing.MaxRootSize)
	if err != nil {
		return nil, fmt.Errorf("origin root chain: %w", err)
	}
	root, _, err := signing.ParseRoot(first)
	if err != nil {
		return nil, fmt.Errorf("origin root version %d: %w", vs[0], err)
	}
	root, err = signing.FollowChain(ctx, root, func(_ context.Context, v uint64) ([]byte, error) {
		return o.readFile(manifest.RootPath(v), signing.MaxRootSize)
	})
	if err != nil {
		return nil, fmt.Errorf("origin root chain: %w", err)
	}
	if last := vs[len(vs)-1]; last != root.Version {
		return nil, fmt.Errorf("origin root chain: version %d is present but the chain stops at version %d", last, root.Version)
	}
	return root, nil
}

// AddRoot publishes a root envelope into the origin's chain: the first root
// of an empty origin (it must be signed by a threshold of its own keys), or
// the version after the newest (it must rotate from it: see signing.Root.Rotate).
// A root identical in payload to one already published is accepted and
// changes nothing. It returns the newest root after the change.
func (o Origin) AddRoot(ctx context.Context, data []byte) (*signing.Root, bool, error) {
	if len(data) > signing.MaxRootSize {
		return nil, false, fmt.Errorf("root: %w: %d bytes, limit %d", signing.ErrTooLarge, len(data), signing.MaxRootSize)
	}
	unlock, err := o.lock(manifest.RootsDir)
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	cur, err := o.Root(ctx)
	if err != nil {
		return nil, false, err
	}
	if cur == nil {
		root, _, err := signing.ParseRoot(data)
		if err != nil {
			return nil, false, err
		}
		return root, true, o.writeFile(manifest.RootPath(root.Version), data)
	}
	// The version, read before any signature check, only picks the path;
	// each path verifies the root in full (or compares it byte for byte).
	env, err := signing.ParseEnvelope(data)
	if err != nil {
		return nil, false, fmt.Errorf("root: %w", err)
	}
	given, err := signing.DecodeRootPayload(env.Payload)
	if err != nil {
		return nil, false, err
	}
	switch {
	case given.Version == cur.Version+1:
		next, err := cur.Rotate(data)
		if err != nil {
			return nil, false, err
		}
		return next, true, o.writeFile(manifest.RootPath(next.Version), data)
	case given.Version <= cur.Version:
		return cur, false, o.samePublishedRoot(given.Version, env.Payload)
	default:
		return nil, false, fmt.Errorf("%w: root version %d given, but the origin's newest root is version %d: publish version %d first",
			signing.ErrRotation, given.Version, cur.Version, cur.Version+1)
	}
}

func (o Origin) samePublishedRoot(version uint64, payload []byte) error {
	data, err := o.readFile(manifest.RootPath(version), signing.MaxRootSize)
	if err != nil {
		return fmt.Errorf("root version %d: %w", version, err)
	}
	env, err := signing.ParseEnvelope(data)
	if err != nil || string(env.Payload) != string(payload) {
		return fmt.Errorf("%w: the origin already has a different root version %d", signing.ErrRotation, version)
	}
	return nil
}

// release is what the origin knows of one published manifest.
type release struct {
	Sequence uint64 `json:"sequence"`
	Version  string `json:"version"`
}

// history lists the published releases of a channel, by reading the
// manifests under history/. Their signatures were checked when published.
func (o Origin) history(product, channel string) ([]release, error) {
	dir := filepath.Dir(o.path(manifest.HistoryPath(product, channel, 1)))
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []release
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		r, err := o.readRelease(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Sequence < out[j].Sequence })
	return out, nil
}

// readRelease reads the sequence and version of a manifest the origin holds.
// Its signatures are not checked: history, latest and pending manifests are
// trusted by location, having been verified when they were written.
func (o Origin) readRelease(path string) (release, error) {
	var r release
	f, err := os.Open(path)
	if err != nil {
		return r, err
	}
	defer f.Close()
	env, err := signing.ReadEnvelope(f)
	if err != nil {
		return r, fmt.Errorf("%s: %w", path, err)
	}
	if err := json.Unmarshal(env.Payload, &r); err != nil {
		return r, fmt.Errorf("%s: %w: %v", path, signing.ErrMalformed, err)
	}
	return r, nil
}
