package manifest

import "time"

// Limits on what a manifest may describe. A parser refuses anything larger
// before it allocates for it.
const (
	// MaxChunks is the most chunks one manifest may list: 128 GiB of
	// artifact at the default 1 MiB average chunk size.
	MaxChunks = 1 << 17
	// MaxChunkSize is the largest chunk any chunking parameters may produce.
	MaxChunkSize = 64 << 20
	// MinChunkSize is the smallest minimum chunk size the chunker accepts.
	MinChunkSize = 4 << 10
	// MaxInstallArgs bounds the argument lists in install instructions.
	MaxInstallArgs = 64
	// MaxInstallArgLen bounds each argument, and the target path.
	MaxInstallArgLen = 4096
)

// ChunkingFastCDC names the content-defined chunking algorithm specified in
// docs/SPEC.md ("Chunking").
const ChunkingFastCDC = "fastcdc-gear-v1"

// Chunking records how the publisher split the artifact. Verifiers do not need
// it (every chunk is named by its digest); agents use it to compare releases.
type Chunking struct {
	Algorithm string `json:"algorithm"`
	Min       int    `json:"min"`
	Avg       int    `json:"avg"`
	Max       int    `json:"max"`
}

// DefaultChunking is min 256 KiB, average 1 MiB, max 4 MiB.
func DefaultChunking() Chunking {
	return Chunking{Algorithm: ChunkingFastCDC, Min: 256 << 10, Avg: 1 << 20, Max: 4 << 20}
}

// Chunk is one piece of the artifact, in order.
type Chunk struct {
	SHA256 Digest `json:"sha256"`
	Size   int64  `json:"size"`
}

// Artifact describes the whole file that the chunks concatenate to.
type Artifact struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 Digest `json:"sha256"`
}

// Install tells the agent how to install the artifact. Which installers and
// targets an agent accepts is decided by its local configuration.
type Install struct {
	Installer       string   `json:"installer"`                  // "file", "archive" or "command"
	Target          string   `json:"target,omitempty"`           // file or directory path
	Mode            string   `json:"mode,omitempty"`             // octal, e.g. "0755"
	Command         []string `json:"command,omitempty"`          // argv; "{artifact}" is replaced
	HealthCheck     []string `json:"health_check,omitempty"`     // argv
	RollbackCommand []string `json:"rollback_command,omitempty"` // argv
}

// Manifest is the signed payload of a release.
type Manifest struct {
	Product  string    `json:"product"`
	Channel  string    `json:"channel"`
	Sequence uint64    `json:"sequence"`
	Version  string    `json:"version"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
	Artifact Artifact  `json:"artifact"`
	Chunking Chunking  `json:"chunking"`
	Chunks   []Chunk   `json:"chunks"`
	Install  Install   `json:"install"`
}

// Offsets returns where each chunk starts in the artifact: the sum of the
// sizes of the chunks before it. Every part of the agent that places or
// finds a chunk's bytes in a file takes its offsets from here.
func (m *Manifest) Offsets() []int64 {
	offs := make([]int64, len(m.Chunks))
	var off int64
	for i, c := range m.Chunks {
		offs[i] = off
		off += c.Size
	}
	return offs
}
