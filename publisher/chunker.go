// Package publisher splits releases into content-defined chunks and writes
// them, with a signed manifest, to an origin mirror.
package publisher

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/fleetcast/fleetcast/manifest"
)

// GearLabel is the domain-separation prefix hashed to derive the gear table
// (docs/SPEC.md, "Chunking").
const GearLabel = "fleetcast-gear-v1"

// gear maps every byte value to a pseudo-random 64-bit word. It is fixed by
// the spec; TestGearTable pins it.
var gear = makeGear()

// makeGear derives gear[i] as the first 8 bytes, big-endian, of
// SHA-256(GearLabel || byte(i)).
func makeGear() *[256]uint64 {
	var t [256]uint64
	for i := range t {
		sum := sha256.Sum256(append([]byte(GearLabel), byte(i)))
		t[i] = binary.BigEndian.Uint64(sum[:8])
	}
	return &t
}

// ValidateChunking reports whether c names fastcdc-gear-v1 with parameters the
// chunker accepts: MinChunkSize <= Min < Avg < Max <= MaxChunkSize and Avg a
// power of two. The error names the offending field.
func ValidateChunking(c manifest.Chunking) error {
	switch {
	case c.Algorithm != manifest.ChunkingFastCDC:
		return fmt.Errorf("chunking: algorithm %q is not supported, want %q", c.Algorithm, manifest.ChunkingFastCDC)
	case c.Min < manifest.MinChunkSize:
		return fmt.Errorf("chunking: min %d is below the smallest allowed %d", c.Min, manifest.MinChunkSize)
	case c.Avg <= c.Min:
		return fmt.Errorf("chunking: avg %d must be larger than min %d", c.Avg, c.Min)
	case c.Avg&(c.Avg-1) != 0:
		return fmt.Errorf("chunking: avg %d is not a power of two", c.Avg)
	case c.Max <= c.Avg:
		return fmt.Errorf("chunking: max %d must be larger than avg %d", c.Max, c.Avg)
	case c.Max > manifest.MaxChunkSize:
		return fmt.Errorf("chunking: max %d is above the largest allowed %d", c.Max, manifest.MaxChunkSize)
	}
	return nil
}

// Masks returns the two cut masks for an average chunk size of avg (a power
// of two, 2^bits): maskS has the top bits+2 bits set and is used before avg,
// maskL has the top bits-2 bits set and is used from avg on.
func Masks(avg int) (maskS, maskL uint64) {
	n := bits.TrailingZeros64(uint64(avg))
	return ^uint64(0) << (64 - (n + 2)), ^uint64(0) << (64 - (n - 2))
}

// Boundary returns the length of the chunk that starts at data[0]. data must
// hold at least c.Max bytes, or else everything that is left of the input, in
// which case a chunk that finds no cut point ends with the input. c must pass
// ValidateChunking.
//
// The gear hash h starts at 0 at offset c.Min. For every offset i from c.Min
// on, h = h<<1 + gear[data[i]]; the chunk ends after byte i (length i+1) at
// the first i where h&mask == 0, with maskS for i < c.Avg and maskL for
// i >= c.Avg. A chunk that has not ended by c.Max bytes is cut at c.Max.
func Boundary(c manifest.Chunking, data []byte) int {
	if len(data) <= c.Min {
		return len(data)
	}
	maskS, maskL := Masks(c.Avg)
	end := min(len(data), c.Max)
	mid := min(end, c.Avg)
	h, n := scan(0, maskS, data[c.Min:mid])
	if n >= 0 {
		return c.Min + n + 1
	}
	_, n = scan(h, maskL, data[mid:end])
	if n >= 0 {
		return mid + n + 1
	}
	return end
}

// scan rolls the gear hash h over data and returns the index of the first
// byte after which h&mask == 0, or -1 and the final hash if there is none.
//
// It takes two bytes per step: h<<2 + (g0<<1 + g1) equals (h<<1 + g0)<<1 + g1,
// and computing it from h directly halves the dependency chain through h,
// which bounds the loop's speed. The check after the first byte of the pair
// branches off that chain.
func scan(h, mask uint64, data []byte) (uint64, int) {
	g := gear
	p := data
	for len(p) >= 2 {
		g0, g1 := g[p[0]], g[p[1]]
		h1 := h<<1 + g0
		h = h<<2 + (g0<<1 + g1)
		if h1&mask == 0 {
			return h1, len(data) - len(p)
		}
		if h&mask == 0 {
			return h, len(data) - len(p) + 1
		}
		p = p[2:]
	}
	if len(p) == 1 {
		h = h<<1 + g[p[0]]
		if h&mask == 0 {
			return h, len(data) - 1
		}
	}
	return h, -1
}

// Chunker cuts a stream into content-defined chunks with Boundary. It reads
// into one buffer of at least 2*Max bytes and allocates nothing per chunk.
type Chunker struct {
	r   io.Reader
	c   manifest.Chunking
	buf []byte
	pos int   // start of the next chunk in buf
	end int   // end of the buffered data in buf
	err error // sticky read error; io.EOF once r is exhausted
}

// NewChunker returns a Chunker that reads r and cuts it with parameters c,
// which must pass ValidateChunking.
func NewChunker(r io.Reader, c manifest.Chunking) (*Chunker, error) {
	if err := ValidateChunking(c); err != nil {
		return nil, err
	}
	return newChunker(r, c, make([]byte, 2*c.Max)), nil
}

// newChunker returns a Chunker that reads into buf, which must hold at least
// 2*c.Max bytes; c must be valid.
func newChunker(r io.Reader, c manifest.Chunking, buf []byte) *Chunker {
	return &Chunker{r: r, c: c, buf: buf}
}

// Next returns the next chunk. The slice points into the Chunker's buffer and
// is valid only until the next call. After the last chunk Next returns io.EOF;
// an empty stream has no chunks. A read error other than io.EOF is returned at
// once and by every later call.
func (k *Chunker) Next() ([]byte, error) {
	if k.end-k.pos < k.c.Max && k.err == nil {
		k.fill()
	}
	if k.err != nil && k.err != io.EOF {
		return nil, k.err
	}
	if k.pos == k.end {
		return nil, io.EOF
	}
	n := Boundary(k.c, k.buf[k.pos:k.end])
	chunk := k.buf[k.pos : k.pos+n]
	k.pos += n
	return chunk, nil
}

// fill moves the unconsumed bytes to the front of the buffer and reads until
// the buffer is full or the reader ends. io.ErrUnexpectedEOF from a short
// final read counts as the end of the stream.
func (k *Chunker) fill() {
	k.end = copy(k.buf, k.buf[k.pos:k.end])
	k.pos = 0
	n, err := io.ReadFull(k.r, k.buf[k.end:])
	k.end += n
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	k.err = err
}
