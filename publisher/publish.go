package publisher

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetcast/fleetcast/internal/atomicfile"
	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/signing"
)

// ErrVersionExists: the channel already has a release with this version.
var ErrVersionExists = errors.New("version already published")

// DefaultExpiry is how long a manifest stays valid when not told otherwise.
const DefaultExpiry = 720 * time.Hour

// Options describe one release to publish.
type Options struct {
	Product, Channel, Version string
	ArtifactName              string        // name recorded in the manifest; the file's base name when empty
	Expires                   time.Duration // manifest lifetime; DefaultExpiry when zero
	Install                   manifest.Install
	Chunking                  manifest.Chunking // DefaultChunking when zero
	Keys                      []*signing.PrivateKey
	Now                       time.Time // creation time; time.Now when zero
	Workers                   int       // hashing and writing goroutines; 2x GOMAXPROCS when zero
}

// Result says what a publish did.
type Result struct {
	Manifest  *manifest.Manifest
	Published bool // false: below the threshold, written to Path for co-signing
	// AlreadyPublished: PublishPending found this exact manifest published
	// (a retry, or a crashed publish that was finished); nothing changed.
	AlreadyPublished bool
	Path             string // the envelope written, relative to the origin
	SignedBy         []signing.KeyID
	Root             *signing.Root
	Chunks           int
	NewChunks        int
	Bytes            int64
	NewBytes         int64
	Duration         time.Duration
}

// Publish chunks the artifact at path into the origin's chunk store, signs a
// manifest for it with opts.Keys and, when they meet the origin root's
// threshold, publishes it as the channel's latest release (history first,
// latest manifest last). Below the threshold the signed envelope is written
// to the channel's pending/ folder for `fleetcast sign` and PublishPending.
func Publish(ctx context.Context, o Origin, path string, opts Options) (*Result, error) {
	start := time.Now()
	opts = opts.withDefaults(start, path)
	if err := opts.check(); err != nil {
		return nil, err
	}
	unlock, err := o.lock(opts.Product + "/" + opts.Channel)
	if err != nil {
		return nil, err
	}
	defer unlock()
	root, err := o.currentRoot(ctx, opts.Now)
	if err != nil {
		return nil, err
	}
	if err := checkKeys(root, opts.Keys); err != nil {
		return nil, err
	}
	hist, err := o.history(opts.Product, opts.Channel)
	if err != nil {
		return nil, fmt.Errorf("read %s/%s history: %w", opts.Product, opts.Channel, err)
	}
	if err := o.repairLatest(opts.Product, opts.Channel, hist, root, opts.Now); err != nil {
		return nil, err
	}
	seq, err := nextSequence(opts.Product, opts.Channel, opts.Version, hist)
	if err != nil {
		return nil, err
	}
	res, err := o.storeArtifact(ctx, path, opts)
	if err != nil {
		return nil, err
	}
	m := res.Manifest
	m.Product, m.Channel, m.Sequence, m.Version = opts.Product, opts.Channel, seq, opts.Version
	m.Created, m.Expires = opts.Now.UTC().Truncate(time.Second), opts.Now.Add(opts.Expires).UTC().Truncate(time.Second)
	m.Install = opts.Install
	payload, err := manifest.Encode(m)
	if err != nil {
		return nil, err
	}
	env := signing.NewEnvelope(manifest.PayloadType, payload)
	for _, k := range opts.Keys {
		env.Sign(k)
	}
	if err := o.finish(ctx, root, env, res, opts.Now); err != nil {
		return nil, err
	}
	res.Duration = time.Since(start)
	return res, nil
}

func (opts Options) withDefaults(now time.Time, path string) Options {
	if opts.ArtifactName == "" {
		opts.ArtifactName = filepath.Base(path)
	}
	if opts.Expires == 0 {
		opts.Expires = DefaultExpiry
	}
	if opts.Chunking == (manifest.Chunking{}) {
		opts.Chunking = manifest.DefaultChunking()
	}
	if opts.Now.IsZero() {
		opts.Now = now
	}
	return opts
}

func (opts Options) check() error {
	if err := manifest.CheckName("product", opts.Product); err != nil {
		return err
	}
	if err := manifest.CheckName("channel", opts.Channel); err != nil {
		return err
	}
	switch {
	case !manifest.ValidVersion(opts.Version):
		return fmt.Errorf("version %q: want 1-128 characters of A-Z a-z 0-9 . _ + ~ -", opts.Version)
	case opts.Expires < 0:
		return fmt.Errorf("expiry %v: must be positive", opts.Expires)
	case !manifest.ValidVersion(opts.ArtifactName):
		return fmt.Errorf("artifact name %q: want 1-128 characters of A-Z a-z 0-9 . _ + ~ - (rename the file or set the name)", opts.ArtifactName)
	case opts.Now.Add(opts.Expires).UTC().Year() > 9999:
		return fmt.Errorf("expiry %v: past the year 9999", opts.Expires)
	case len(opts.Keys) == 0:
		return errors.New("no signing key given")
	}
	if err := ValidateChunking(opts.Chunking); err != nil {
		return err
	}
	return opts.Install.Validate()
}

// currentRoot returns the origin's newest root, refusing an expired one.
func (o Origin) currentRoot(ctx context.Context, now time.Time) (*signing.Root, error) {
	root, err := o.Root(ctx)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return nil, fmt.Errorf("origin %s has no trust root: publish one first (fleetcast publish --root root.json ...)", o.Dir)
	}
	return root, root.CheckExpiry(now)
}

// checkKeys refuses signing keys the root does not list: their signatures
// would count for nothing.
func checkKeys(root *signing.Root, keys []*signing.PrivateKey) error {
	for _, k := range keys {
		if _, ok := root.Key(k.Public.ID); !ok {
			return fmt.Errorf("key %s: %w (root version %d trusts %s)", k.Public.ID, signing.ErrUnknownKey, root.Version, root.KeyIDs())
		}
	}
	return nil
}

// nextSequence returns the sequence after the channel's newest release in
// hist, refusing a version that was already published.
func nextSequence(product, channel, version string, hist []release) (uint64, error) {
	var last uint64
	for _, r := range hist {
		if r.Version == version {
			return 0, fmt.Errorf("%s/%s %w: version %s is sequence %d; choose a new version", product, channel, ErrVersionExists, version, r.Sequence)
		}
		last = max(last, r.Sequence)
	}
	return last + 1, nil
}

// storeArtifact splits the file into chunks, writing those the origin lacks.
func (o Origin) storeArtifact(ctx context.Context, path string, opts Options) (*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("artifact: %w", err)
	}
	defer f.Close()
	st := &chunkStore{origin: o}
	workers := opts.Workers
	if workers == 0 {
		workers = 2 * runtime.GOMAXPROCS(0)
	}
	split, err := Split(ctx, f, opts.Chunking, workers, st.put)
	if err == nil {
		err = st.commit()
	}
	if err != nil {
		st.abort()
		return nil, fmt.Errorf("artifact %s: %w", path, err)
	}
	m := &manifest.Manifest{
		Artifact: manifest.Artifact{Name: opts.ArtifactName, Size: split.Size, SHA256: split.SHA256},
		Chunking: opts.Chunking,
		Chunks:   split.Chunks,
	}
	return &Result{Manifest: m, Chunks: len(split.Chunks), Bytes: split.Size, NewChunks: int(st.newChunks.Load()), NewBytes: st.newBytes.Load()}, nil
}

// chunkStore writes chunks into the origin's content-addressed store in two
// steps: put writes each new chunk to a temporary file (called from several
// goroutines at once), commit makes them all durable and renames them into
// place. A chunk is never visible under its digest before its data is durable.
type chunkStore struct {
	origin    Origin
	dirs      sync.Map // shard directory -> struct{}, created and to be synced
	writing   sync.Map // digest -> struct{}: written in this publish
	mu        sync.Mutex
	temps     [][2]string // temporary file, final path
	newChunks atomic.Int64
	newBytes  atomic.Int64
}

func (s *chunkStore) put(c SplitChunk) error {
	p := s.origin.path(manifest.ChunkPath(c.SHA256))
	dir := filepath.Dir(p)
	if _, ok := s.dirs.Load(dir); !ok {
		// Synced in commit even when every chunk in it exists: a chunk another
		// publisher just renamed into place may not be durable yet.
		if err := atomicfile.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		s.dirs.Store(dir, struct{}{})
	}
	if fi, err := os.Stat(p); err == nil && fi.Size() == c.Size {
		return nil // stored by an earlier release
	}
	if _, dup := s.writing.LoadOrStore(c.SHA256, struct{}{}); dup {
		return nil // the same content earlier in this artifact
	}
	tmp, err := writeChunkTemp(p, c.Data)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.temps = append(s.temps, [2]string{tmp, p})
	s.mu.Unlock()
	s.newChunks.Add(1)
	s.newBytes.Add(c.Size)
	return nil
}

// commit makes the written chunks durable, renames them into place, and
// syncs the directories that gained entries.
func (s *chunkStore) commit() error {
	if len(s.temps) > 0 {
		if err := syncFilesystem(s.origin.path(manifest.ChunksDir)); err != nil {
			return err
		}
	}
	for _, t := range s.temps {
		if err := os.Rename(t[0], t[1]); err != nil {
			return fmt.Errorf("store chunk %s: %w", filepath.Base(t[1]), err)
		}
	}
	s.temps = nil
	var err error
	s.dirs.Range(func(k, _ any) bool {
		err = atomicfile.SyncDir(k.(string))
		return err == nil
	})
	if err == nil {
		err = atomicfile.SyncDir(s.origin.path(manifest.ChunksDir))
	}
	return err
}

// abort removes temporary files left by a failed publish.
func (s *chunkStore) abort() {
	for _, t := range s.temps {
		os.Remove(t[0])
	}
}

// finish publishes env when its signatures meet the root's threshold, and
// otherwise writes it to pending/ for co-signing.
func (o Origin) finish(ctx context.Context, root *signing.Root, env *signing.Envelope, res *Result, now time.Time) error {
	m := res.Manifest
	res.Root = root
	signers, err := root.VerifyEnvelope(env, manifest.PayloadType)
	res.SignedBy = signers
	if errors.Is(err, signing.ErrThreshold) && !errors.Is(err, signing.ErrBadSignature) {
		res.Path = manifest.PendingPath(m.Product, m.Channel, m.Sequence)
		if err := o.checkPendingFree(res.Path, m.Version); err != nil {
			return err
		}
		return o.writeFile(res.Path, env.Marshal())
	}
	if err != nil {
		return err
	}
	// Check the exact bytes agents will read, through the agents' path.
	if _, err := manifest.VerifyEnvelope(env, root, now); err != nil {
		return err
	}
	data := env.Marshal()
	if err := o.writeFile(manifest.HistoryPath(m.Product, m.Channel, m.Sequence), data); err != nil {
		return err
	}
	res.Path, res.Published = manifest.LatestPath(m.Product, m.Channel), true
	if err := o.writeFile(res.Path, data); err != nil {
		return err
	}
	// A manifest pending for this sequence (published by PublishPending, or
	// overtaken by a direct publish) can never be published now.
	os.Remove(o.path(manifest.PendingPath(m.Product, m.Channel, m.Sequence)))
	return nil
}
