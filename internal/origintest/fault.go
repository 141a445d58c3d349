package origintest

import (
	"bytes"
	"net/http"
	"strconv"

	"github.com/fleetcast/fleetcast/manifest"
)

// Fault is a way to break a chunk response. A broken response ignores a
// Range request: it is the whole chunk, broken, with status 200.
type Fault int

const (
	Corrupt       Fault = iota + 1 // a byte in the middle of the body flipped
	Truncate                       // honest Content-Length, body cut short, connection closed
	LongDeclared                   // Content-Length and body one byte longer than the chunk
	ShortDeclared                  // Content-Length one byte short of the chunk, body cut to match
	ChunkedExtra                   // no Content-Length, extra bytes after the chunk
	ChunkedShort                   // no Content-Length, body ends 100 bytes early
)

var faultNames = map[Fault]string{Corrupt: "corrupt", Truncate: "truncate", LongDeclared: "long-declared",
	ShortDeclared: "short-declared", ChunkedExtra: "chunked-extra", ChunkedShort: "chunked-short"}

func (f Fault) String() string {
	if s, ok := faultNames[f]; ok {
		return s
	}
	return "Fault(" + strconv.Itoa(int(f)) + ")"
}

// Always, as Break's count, breaks every response until Mend.
const Always = -1

// fault is one Break: f for the next left responses (Always: every one)
// for chunk, or for every chunk when all is set.
type fault struct {
	f     Fault
	left  int
	chunk manifest.Digest
	all   bool
}

// Break breaks the next n responses for each of chunks (for every chunk
// when none is named) as f says; n is Always to break every one until
// Mend. Where Breaks overlap, the earliest applies.
func (o *Origin) Break(f Fault, n int, chunks ...manifest.Digest) {
	if _, ok := faultNames[f]; !ok {
		panic("origintest: unknown " + f.String())
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(chunks) == 0 {
		o.faults = append(o.faults, fault{f: f, left: n, all: true})
	}
	for _, c := range chunks {
		o.faults = append(o.faults, fault{f: f, left: n, chunk: c})
	}
}

// Mend ends every Break.
func (o *Origin) Mend() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.faults = nil
}

// fault returns how to break this response for chunk d (0: not at all),
// with o.mu held, and counts it.
func (o *Origin) fault(d manifest.Digest) Fault {
	for i := range o.faults {
		b := &o.faults[i]
		if b.left == 0 || !b.all && b.chunk != d {
			continue
		}
		if b.left > 0 {
			b.left--
		}
		return b.f
	}
	return 0
}

// write sends body broken as f says.
func (f Fault) write(w http.ResponseWriter, body []byte) {
	h := w.Header()
	flush := func() { http.NewResponseController(w).Flush() }
	switch f {
	case Corrupt:
		body = bytes.Clone(body)
		body[len(body)/2] ^= 0x01
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	case Truncate:
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body[:len(body)/2])
		flush()
		panic(http.ErrAbortHandler) // close the connection mid-body
	case LongDeclared:
		h.Set("Content-Length", strconv.Itoa(len(body)+1))
		w.Write(append(bytes.Clone(body), 'x'))
	case ShortDeclared:
		h.Set("Content-Length", strconv.Itoa(len(body)-1))
		w.Write(body[:len(body)-1])
	case ChunkedExtra:
		w.WriteHeader(http.StatusOK)
		flush() // no Content-Length: chunked transfer encoding
		w.Write(body)
		w.Write([]byte("trailing garbage"))
	case ChunkedShort:
		w.WriteHeader(http.StatusOK)
		flush()
		w.Write(body[:max(len(body)-100, 0)])
	}
}
