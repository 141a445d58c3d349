package manifest

import (
	"path"
	"strconv"
)

// Origin mirror layout (docs/SPEC.md, "Origin layout"). Paths are relative,
// slash-separated, and the same on disk and in URLs.
const (
	ChunksDir = "chunks"
	RootsDir  = "roots"
)

// ChunkPath is where a chunk is stored: chunks/<first 2 hex>/<64 hex>.
func ChunkPath(d Digest) string {
	h := d.String()
	return path.Join(ChunksDir, h[:2], h)
}

// RootPath is where root version v is published: roots/<v>.root.json.
func RootPath(version uint64) string {
	return path.Join(RootsDir, strconv.FormatUint(version, 10)+".root.json")
}

// LatestPath is the channel's latest signed manifest, written last by a publish.
func LatestPath(product, channel string) string {
	return path.Join(product, channel, "manifest.json")
}

// HistoryPath is where the manifest of one sequence is kept for good.
func HistoryPath(product, channel string, sequence uint64) string {
	return path.Join(product, channel, "history", strconv.FormatUint(sequence, 10)+".json")
}

// PendingPath is where a manifest waits for co-signatures before it is published.
func PendingPath(product, channel string, sequence uint64) string {
	return path.Join(product, channel, "pending", strconv.FormatUint(sequence, 10)+".json")
}
