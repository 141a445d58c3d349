package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/fleetcast/fleetcast/agent/config"
	"github.com/fleetcast/fleetcast/agent/fetch"
	"github.com/fleetcast/fleetcast/agent/fleettls"
	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/agent/store"
	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/signing"
)

// peerServer answers other agents (docs/SPEC.md §8) from the store's
// holdings. Every handler checks that the caller is of this agent's fleet.
type peerServer struct {
	cfg      *config.Config
	id       string          // this agent's
	fleet    *fleettls.Fleet // this agent's
	held     *store.Holdings // what is served
	log      *slog.Logger
	uploads  chan struct{} // one token per chunk request being served
	polls    chan struct{} // one token per state request being held
	limit    *rate.Limiter // upload_rate, or nil
	uploaded atomic.Int64
	served   atomic.Int64 // chunks
}

// newPeerServer serves held as agent id of fleet, with cfg's limits.
func newPeerServer(cfg *config.Config, id string, fleet *fleettls.Fleet, held *store.Holdings, log *slog.Logger) *peerServer {
	s := &peerServer{cfg: cfg, id: id, fleet: fleet, held: held, log: log,
		uploads: make(chan struct{}, cfg.MaxUploads), polls: make(chan struct{}, maxFollowers)}
	if cfg.UploadRate > 0 {
		s.limit = fetch.Limiter(cfg.UploadRate)
	}
	return s
}

// maxFollowers bounds the state requests held at once, one per follower.
// Idle agents follow a bounded set each (half of peer_degree, drawn at
// random), so about as many follow this one; during an assembly every
// agent follows every peer it knows, up to maxRolloutFollows. Past it, a
// follower is answered 503 and follows another peer.
const maxFollowers = 2 * maxRolloutFollows

func (s *peerServer) register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+peerproto.StatePath, s.guard(s.state))
	mux.HandleFunc("GET "+peerproto.ManifestPath+"{product}/{channel}/{sequence}", s.guard(s.manifest))
	mux.HandleFunc("GET "+peerproto.ChunkPath+"{digest}", s.guard(s.chunk))
}

// guard refuses callers outside the fleet and sets the protocol headers.
func (s *peerServer) guard(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(peerproto.ProtoHeader, peerproto.Proto)
		w.Header().Set(peerproto.AgentHeader, s.id)
		w.Header().Set(peerproto.FleetHeader, s.fleet.ID())
		if !s.fleet.PeerAuthenticated(r) {
			http.Error(w, "not a member of this fleet", http.StatusForbidden)
			return
		}
		h(w, r)
	}
}

// state answers GET /v1/peer/state[?after=V[&wait=S][&quiet=1]], holding
// the request until the holdings change past V or the wait (LongPoll
// seconds unless asked) passes; with quiet=1 an unchanged state is 304.
func (s *peerServer) state(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if after := q.Get("after"); after != "" {
		v, err := strconv.ParseUint(after, 10, 64)
		if err != nil {
			http.Error(w, "after: want a version number", http.StatusBadRequest)
			return
		}
		wait := peerproto.LongPoll
		if ws := q.Get(peerproto.WaitParam); ws != "" {
			if wait, err = strconv.Atoi(ws); err != nil || wait < 1 || wait > peerproto.MaxLongPoll {
				http.Error(w, fmt.Sprintf("wait: want seconds from 1 to %d", peerproto.MaxLongPoll), http.StatusBadRequest)
				return
			}
		}
		select {
		case s.polls <- struct{}{}:
			ctx, cancel := context.WithTimeout(r.Context(), time.Duration(wait)*time.Second)
			now := s.held.Wait(ctx, v)
			cancel()
			<-s.polls
			if now == v && q.Get(peerproto.QuietParam) == "1" {
				w.WriteHeader(http.StatusNotModified) // nothing new: no body, the follower's view stands
				return
			}
		default: // as many followers as it takes: the caller follows another peer
			w.Header().Set("Retry-After", strconv.Itoa(int(fullFor/time.Second)))
			http.Error(w, "full: as many followers as this agent takes", http.StatusServiceUnavailable)
			return
		}
	}
	v, rels := s.held.Snapshot()
	st := peerproto.State{Proto: peerproto.Proto, AgentID: s.id, FleetID: s.fleet.ID(), Version: v, Releases: rels,
		Subscriptions: slices.Clone(s.cfg.Subscriptions)}
	if len(st.Releases) > peerproto.MaxReleases {
		st.Releases = st.Releases[len(st.Releases)-peerproto.MaxReleases:]
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(st)
}

// manifest answers GET /v1/peer/manifest/{product}/{channel}/{sequence}
// with the signed envelope the store holds, as it was fetched.
func (s *peerServer) manifest(w http.ResponseWriter, r *http.Request) {
	seq, err := strconv.ParseUint(r.PathValue("sequence"), 10, 64)
	key := manifest.ChannelID{Product: r.PathValue("product"), Channel: r.PathValue("channel")}.Release(seq)
	if err != nil || !manifest.ValidName(key.Product) || !manifest.ValidName(key.Channel) {
		http.Error(w, "bad release name", http.StatusBadRequest)
		return
	}
	dir, ok := s.held.Has(key)
	if !ok {
		http.NotFound(w, r)
		return
	}
	b, err := store.ReadLimited(filepath.Join(dir, store.ManifestFile), signing.MaxEnvelopeSize)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
}

// chunk answers GET /v1/peer/chunk/{digest}, or 503 when max_uploads
// requests are being served already.
func (s *peerServer) chunk(w http.ResponseWriter, r *http.Request) {
	d, err := manifest.ParseDigest(r.PathValue("digest"))
	if err != nil {
		http.Error(w, "bad digest", http.StatusBadRequest)
		return
	}
	select {
	case s.uploads <- struct{}{}:
		defer func() { <-s.uploads }()
	default:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	f, loc, err := s.open(d)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(loc.Size, 10))
	// A reader that stalls must not hold an upload slot for ever.
	if d := s.cfg.PeerTimeout; d > 0 {
		http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
	}
	var out io.Writer = w
	if s.limit != nil {
		out = &limitedWriter{ctx: r.Context(), w: w, l: s.limit}
	}
	n, err := io.Copy(out, io.NewSectionReader(f, loc.Offset, loc.Size))
	s.uploaded.Add(n)
	if err == nil {
		s.served.Add(1)
		s.log.Debug("served chunk to peer", slog.String("chunk", d.String()), slog.String("peer", r.RemoteAddr))
	}
}

// open finds and opens a held chunk. A release completed between the
// lookup and the open moved its bytes from artifact.part to artifact.
func (s *peerServer) open(d manifest.Digest) (*os.File, store.Location, error) {
	loc, ok := s.held.Lookup(d)
	if !ok {
		return nil, loc, os.ErrNotExist
	}
	f, err := os.Open(loc.Path)
	if errors.Is(err, fs.ErrNotExist) && filepath.Base(loc.Path) == store.PartFile {
		loc.Path = filepath.Join(filepath.Dir(loc.Path), store.ArtifactFile)
		f, err = os.Open(loc.Path)
	}
	return f, loc, err
}

// limitedWriter writes through a rate limiter, in pieces of at most its burst.
type limitedWriter struct {
	ctx context.Context
	w   io.Writer
	l   *rate.Limiter
}

func (lw *limitedWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), lw.l.Burst())
		if err := lw.l.WaitN(lw.ctx, k); err != nil {
			return n, err
		}
		m, err := lw.w.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// refusalWarnEvery is the least time between two warnings of refused TLS
// handshakes with one peer: a host of another fleet, or a hostile one, that
// connects again and again must not flood the log.
const refusalWarnEvery = 10 * time.Minute

// warnLimiter lets one warning a key through per interval and counts the
// ones it holds back. It keeps at most maxWarnKeys keys: past that, hosts
// not seen within the interval are forgotten, and new ones are not logged
// until some are. Safe for concurrent use.
type warnLimiter struct {
	every time.Duration
	mu    sync.Mutex
	keys  map[string]*warnState
}

type warnState struct {
	last time.Time
	held int // warnings held back since last
}

// maxWarnKeys bounds the hosts a warnLimiter remembers.
const maxWarnKeys = 256

func newWarnLimiter(every time.Duration) *warnLimiter {
	return &warnLimiter{every: every, keys: make(map[string]*warnState)}
}

// allow reports whether a warning for key may be logged at now, and how many
// were held back since the last one logged.
func (l *warnLimiter) allow(key string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.keys[key]
	if st == nil {
		if len(l.keys) >= maxWarnKeys {
			for k, s := range l.keys {
				if now.Sub(s.last) >= l.every {
					delete(l.keys, k)
				}
			}
			if len(l.keys) >= maxWarnKeys {
				return false, 0
			}
		}
		l.keys[key] = &warnState{last: now}
		return true, 0
	}
	if now.Sub(st.last) < l.every {
		st.held++
		return false, 0
	}
	held := st.held
	st.last, st.held = now, 0
	return true, held
}

// handshakeLog is the API server's error log. A TLS handshake refused
// because one side does not hold this fleet's key is a warning, rate-limited
// per host; anything else the server logs stays at DEBUG.
type handshakeLog struct {
	log   *slog.Logger
	limit *warnLimiter
}

// handshakeLogPrefix starts net/http's log line of a failed TLS handshake.
const handshakeLogPrefix = "http: TLS handshake error from "

func (h *handshakeLog) Write(p []byte) (int, error) {
	line := strings.TrimSuffix(string(p), "\n")
	rest, ok := strings.CutPrefix(line, handshakeLogPrefix)
	addr, reason, _ := strings.Cut(rest, ": ")
	meaning := refusedHandshake(reason)
	if !ok || meaning == "" {
		h.log.Debug("http server", slog.String("message", line))
		return len(p), nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if ok, held := h.limit.allow(host, time.Now()); ok {
		h.log.Warn("peer refused at the TLS handshake", slog.String("peer", addr), slog.String("reason", meaning+" ("+reason+")"),
			slog.Int("refusals_not_logged", held))
	}
	return len(p), nil
}

// refusedHandshake says what a failed handshake means when one side refused
// the other's certificate, or returns "". An agent of another fleet checks
// this agent's certificate first, so it is the one that refuses.
func refusedHandshake(reason string) string {
	switch {
	case strings.Contains(reason, "tls: bad certificate"):
		return "the peer refused this fleet's certificate: it holds another fleet secret"
	case strings.Contains(reason, fleettls.ErrNotFleet.Error()):
		return "this agent refused the peer's certificate"
	case strings.Contains(reason, "tls: invalid signature by the client certificate"):
		return "the peer presented this fleet's certificate without its key: a copy, not a member"
	}
	return ""
}
