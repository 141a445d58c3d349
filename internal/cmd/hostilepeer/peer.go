package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/signing"
)

// The peer protocol is agent/peerproto's (docs/SPEC.md, "Peer protocol").
const (
	// longPoll is how long GET /v1/peer/state?after=V is held.
	longPoll = peerproto.LongPoll * time.Second
	// reloadInterval is how often the origin directory is read again for
	// a newer release.
	reloadInterval = 200 * time.Millisecond
)

// Modes: what is done to every chunk served.
const (
	modeCorrupt   = "corrupt"    // one byte flipped
	modeWrongSize = "wrong-size" // wrongSizeExtra bytes appended, declared in Content-Length
	modeSlow      = "slow"       // the true bytes, one per slowInterval
)

const (
	wrongSizeExtra = 100
	slowInterval   = 100 * time.Millisecond
)

// release is the channel's latest release as the origin holds it.
type release struct {
	id       manifest.ReleaseID
	envelope []byte // the signed envelope, served as it is
	nChunks  int
	sizes    map[manifest.Digest]int64 // chunk digest -> size
}

// loadRelease reads the channel's latest manifest from the origin directory,
// without verifying it: the hostile peer relays it, the agents verify it.
func loadRelease(origin, product, channel string) (*release, error) {
	path := filepath.Join(origin, filepath.FromSlash(manifest.LatestPath(product, channel)))
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env, err := io.ReadAll(io.LimitReader(f, signing.MaxEnvelopeSize+1))
	if err != nil {
		return nil, err
	}
	if len(env) > signing.MaxEnvelopeSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, signing.MaxEnvelopeSize)
	}
	e, err := signing.ParseEnvelope(env)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m, err := manifest.Decode(e.Payload)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r := &release{id: m.ID(), envelope: env,
		nChunks: len(m.Chunks), sizes: make(map[manifest.Digest]int64, len(m.Chunks))}
	for _, c := range m.Chunks {
		r.sizes[c.SHA256] = c.Size
	}
	return r, nil
}

// bitmap is the bitmap of n chunks, all set or none.
func bitmap(n int, all bool) string {
	b := make([]bool, n)
	for i := range b {
		b[i] = all
	}
	return peerproto.EncodeBitmap(b)
}

// peer serves the peer protocol with bad chunks.
type peer struct {
	origin           string
	product, channel string
	mode             string
	agentID          string
	fleetID          string
	rel              atomic.Pointer[release] // nil until the origin has a release
	log              *slog.Logger
}

// version is the state version: the sequence held plus one (1 for none).
func (p *peer) version() uint64 {
	if rel := p.rel.Load(); rel != nil {
		return rel.id.Sequence + 1
	}
	return 1
}

// follow reads the origin directory for the channel's latest release until
// ctx ends, so that the peer claims whatever the origin holds.
func (p *peer) follow(ctx context.Context) {
	for {
		if rel, err := loadRelease(p.origin, p.product, p.channel); err == nil {
			if cur := p.rel.Load(); cur == nil || cur.id.Sequence != rel.id.Sequence {
				p.rel.Store(rel)
				p.log.Info("claiming release", slog.Uint64("sequence", rel.id.Sequence), slog.Int("chunks", rel.nChunks))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(reloadInterval):
		}
	}
}

func (p *peer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+peerproto.StatePath, p.serveState)
	mux.HandleFunc("GET "+peerproto.ManifestPath+"{product}/{channel}/{sequence}", p.serveManifest)
	mux.HandleFunc("GET "+peerproto.ChunkPath+"{digest}", p.serveChunk)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set(peerproto.ProtoHeader, peerproto.Proto)
		h.Set(peerproto.AgentHeader, p.agentID)
		h.Set(peerproto.FleetHeader, p.fleetID)
		mux.ServeHTTP(w, r)
	})
}

func (p *peer) serveState(w http.ResponseWriter, r *http.Request) {
	if after := r.URL.Query().Get("after"); after != "" {
		v, err := strconv.ParseUint(after, 10, 64)
		if err != nil {
			http.Error(w, "after: want a version number", http.StatusBadRequest)
			return
		}
		deadline := time.Now().Add(longPoll)
		for p.version() <= v && time.Now().Before(deadline) { // hold until a new release
			select {
			case <-r.Context().Done():
				return
			case <-time.After(reloadInterval):
			}
		}
	}
	p.log.Debug("state asked", slog.String("remote", r.RemoteAddr))
	st := peerproto.State{Proto: peerproto.Proto, AgentID: p.agentID, FleetID: p.fleetID, Version: p.version(),
		Releases: []peerproto.ReleaseHave{}, Subscriptions: []manifest.ChannelID{}}
	if rel := p.rel.Load(); rel != nil { // claims every chunk, fetches none
		st.Releases = append(st.Releases, peerproto.ReleaseHave{ReleaseID: rel.id,
			Chunks: rel.nChunks, Have: bitmap(rel.nChunks, true), Fetching: bitmap(rel.nChunks, false)})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(st)
}

func (p *peer) serveManifest(w http.ResponseWriter, r *http.Request) {
	seq, err := strconv.ParseUint(r.PathValue("sequence"), 10, 64)
	rel := p.rel.Load()
	if err != nil || rel == nil || r.PathValue("product") != rel.id.Product || r.PathValue("channel") != rel.id.Channel || seq != rel.id.Sequence {
		http.NotFound(w, r)
		return
	}
	p.log.Info("served manifest", slog.String("remote", r.RemoteAddr), slog.Uint64("sequence", seq))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(rel.envelope)))
	w.Write(rel.envelope)
}

func (p *peer) serveChunk(w http.ResponseWriter, r *http.Request) {
	d, err := manifest.ParseDigest(r.PathValue("digest"))
	rel := p.rel.Load()
	if err != nil || rel == nil {
		http.NotFound(w, r)
		return
	}
	size, ok := rel.sizes[d]
	if !ok {
		http.NotFound(w, r)
		return
	}
	body, err := p.readChunk(d, size)
	if err != nil {
		p.log.Error("read chunk", slog.String("chunk", d.String()), slog.String("err", err.Error()))
		http.Error(w, "chunk unavailable", http.StatusServiceUnavailable)
		return
	}
	p.log.Info("served bad chunk", slog.String("remote", r.RemoteAddr), slog.String("chunk", d.String()),
		slog.String("mode", p.mode))
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	switch p.mode {
	case modeCorrupt:
		body[len(body)/2] ^= 0x01
	case modeWrongSize:
		body = append(body, make([]byte, wrongSizeExtra)...)
	case modeSlow:
		h.Set("Content-Length", strconv.Itoa(len(body)))
		trickle(w, r, body)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// readChunk reads a chunk of the release from the origin directory.
func (p *peer) readChunk(d manifest.Digest, size int64) ([]byte, error) {
	f, err := os.Open(filepath.Join(p.origin, filepath.FromSlash(manifest.ChunkPath(d))))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	body, err := io.ReadAll(io.LimitReader(f, size+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) != size || size == 0 {
		return nil, fmt.Errorf("chunk file holds %d bytes, the manifest says %d", len(body), size)
	}
	return body, nil
}

// trickle writes body one byte per slowInterval until done or the client
// goes away.
func trickle(w http.ResponseWriter, r *http.Request, body []byte) {
	rc := http.NewResponseController(w)
	t := time.NewTicker(slowInterval)
	defer t.Stop()
	for i := range body {
		if _, err := w.Write(body[i : i+1]); err != nil {
			return
		}
		rc.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}
