package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/internal/atomicfile"
	"github.com/fleetcast/fleetcast/internal/filelock"
	"github.com/fleetcast/fleetcast/manifest"
)

// The data directory (docs/SPEC.md section 7): its lock, the agent's id, its
// peers file.

// AgentIDFile keeps the agent's id across restarts, in data_dir.
const AgentIDFile = "agent-id"

// LoadAgentID reads the agent's id, making one on first start.
func LoadAgentID(dataDir string) (string, error) {
	p := filepath.Join(dataDir, AgentIDFile)
	b, err := ReadLimited(p, 64)
	if err == nil {
		if id := strings.TrimSpace(string(b)); peerproto.ValidAgentID(id) {
			return id, nil
		}
		return "", fmt.Errorf("%s: not an agent id (16 hex digits); remove it to make a new one", p)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	var r [8]byte
	rand.Read(r[:])
	id := hex.EncodeToString(r[:])
	if err := atomicfile.WriteFile(p, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("save agent id: %w", err)
	}
	return id, nil
}

// Lock takes the data directory's OS lock: one agent per data_dir.
func Lock(dir string) (*os.File, error) {
	p := filepath.Join(dir, "agent.lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	if err := filelock.TryLock(f); err != nil {
		holder, _ := os.ReadFile(p)
		f.Close()
		if errors.Is(err, filelock.ErrLocked) {
			return nil, fmt.Errorf("data_dir %s is in use by another agent (%s); give each agent its own data_dir", dir, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	f.Truncate(0)
	fmt.Fprintf(f, "pid %d\n", os.Getpid())
	return f, nil
}

// PeersFile keeps the peers seen recently, in data_dir.
const PeersFile = "peers.json"

// InstallerDir is the installers' private state directory of a channel.
func InstallerDir(dataDir string, ch manifest.ChannelID) string {
	return filepath.Join(dataDir, "installer", ch.Product, ch.Channel)
}
