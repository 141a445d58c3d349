package discovery

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/fleetcast/fleetcast/internal/atomicfile"
)

// maxStateSize bounds the state file; a larger one is refused.
const maxStateSize = 256 << 10

// minSaveInterval is the least time between two writes of the state file.
const minSaveInterval = 5 * time.Second

// stateFile is the JSON form of the state file.
type stateFile struct {
	Version int         `json:"version"`
	Peers   []statePeer `json:"peers"`
}

type statePeer struct {
	Addr     string    `json:"addr"`
	ID       string    `json:"id,omitempty"`
	FleetID  string    `json:"fleet,omitempty"`
	LastSeen time.Time `json:"last_seen"`
}

const stateVersion = 1

// readState reads the remembered peers from path: at most maxPeers valid
// entries, the most recently seen first. A missing file is no peers.
func readState(path string) ([]Peer, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read discovery state: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxStateSize+1))
	if err != nil {
		return nil, fmt.Errorf("read discovery state %s: %w", path, err)
	}
	if len(data) > maxStateSize {
		return nil, fmt.Errorf("read discovery state %s: larger than %d bytes; not a file this agent wrote", path, maxStateSize)
	}
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("read discovery state %s: %w", path, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("read discovery state %s: version %d, want %d", path, st.Version, stateVersion)
	}
	return validStatePeers(st.Peers), nil
}

// validStatePeers keeps the entries with a valid address and ids, newest first.
func validStatePeers(in []statePeer) []Peer {
	slices.SortStableFunc(in, func(a, b statePeer) int { return b.LastSeen.Compare(a.LastSeen) })
	var out []Peer
	seen := map[string]bool{}
	for _, sp := range in {
		addr, err := normalizeAddr(sp.Addr)
		if err != nil || seen[addr] ||
			(sp.ID != "" && checkAgentID(sp.ID) != nil) ||
			(sp.FleetID != "" && checkFleetID(sp.FleetID) != nil) {
			continue
		}
		seen[addr] = true
		out = append(out, Peer{Addr: addr, ID: sp.ID, FleetID: sp.FleetID, Source: SourceRemembered, LastSeen: sp.LastSeen})
		if len(out) == maxPeers {
			break
		}
	}
	return out
}

// rememberLocked returns the peers worth remembering: the live non-static
// peers of Peers(), newest first, at most maxPeers.
func (d *Discovery) rememberLocked(now time.Time) []Peer {
	var out []Peer
	for _, p := range d.peersLocked(now) {
		if p.Source != SourceStatic {
			out = append(out, p)
		}
	}
	slices.SortStableFunc(out, func(a, b Peer) int { return b.LastSeen.Compare(a.LastSeen) })
	if len(out) > maxPeers {
		out = out[:maxPeers]
	}
	return out
}

// maybeSave writes the state file when the remembered set changed (LastSeen
// alone does not count) and the last write is minSaveInterval old, or at
// once when force is set.
func (d *Discovery) maybeSave(force bool) {
	if d.cfg.StateFile == "" {
		return
	}
	d.mu.Lock()
	now := d.now()
	peers := d.rememberLocked(now)
	sig := rememberSig(peers)
	if sig == d.savedSig || (!force && now.Sub(d.lastSave) < minSaveInterval) {
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	err := writeState(d.cfg.StateFile, peers)
	if err != nil {
		d.log.Warn("cannot write discovery state file; will retry", slog.String("reason", err.Error()))
	}
	d.mu.Lock()
	d.lastSave = now
	if err == nil {
		d.savedSig = sig
	}
	d.mu.Unlock()
}

// rememberSig identifies a remembered set without its order and LastSeen.
func rememberSig(peers []Peer) string {
	out := slices.Clone(peers)
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.Addr, b.Addr) })
	return signature(out)
}

func writeState(path string, peers []Peer) error {
	st := stateFile{Version: stateVersion, Peers: []statePeer{}}
	for _, p := range peers {
		st.Peers = append(st.Peers, statePeer{Addr: p.Addr, ID: p.ID, FleetID: p.FleetID, LastSeen: p.LastSeen.UTC()})
	}
	data, err := json.MarshalIndent(st, "", "\t")
	if err != nil {
		return fmt.Errorf("write discovery state: %w", err)
	}
	return atomicfile.WriteFile(path, append(data, '\n'), 0o600)
}
