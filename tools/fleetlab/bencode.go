//go:build linux

package main

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

const (
	// maxTorrentBytes bounds a .torrent file or tracker response read into
	// memory: a torrent of a 100 GiB artifact in 1 MiB pieces is about 2 MiB.
	maxTorrentBytes = 16 << 20
	// maxBencodeDepth bounds the nesting of lists and dictionaries.
	maxBencodeDepth = 32
	// maxBencodeDigits bounds the digits of an integer or a string length.
	maxBencodeDigits = 19
)

// errBencode is wrapped by every malformed-input error of the reader.
var errBencode = errors.New("malformed bencode")

// bdecoder reads bencoded values from b: integers as int64, strings as
// string, lists as []any and dictionaries as map[string]any.
type bdecoder struct {
	b     []byte
	pos   int
	depth int
}

// bdecode decodes b, which must hold exactly one value.
func bdecode(b []byte) (any, error) {
	d := &bdecoder{b: b}
	v, err := d.value()
	if err != nil {
		return nil, err
	}
	if d.pos != len(b) {
		return nil, d.fail("trailing data after the value")
	}
	return v, nil
}

func (d *bdecoder) fail(what string) error {
	return fmt.Errorf("%w at byte %d: %s", errBencode, d.pos, what)
}

func (d *bdecoder) value() (any, error) {
	if d.pos >= len(d.b) {
		return nil, d.fail("unexpected end")
	}
	switch c := d.b[d.pos]; {
	case c == 'i':
		d.pos++
		return d.integer('e')
	case c == 'l' || c == 'd':
		if d.depth >= maxBencodeDepth {
			return nil, d.fail("nested too deeply")
		}
		d.depth++
		defer func() { d.depth-- }()
		d.pos++
		if c == 'l' {
			return d.list()
		}
		return d.dict(nil)
	case c >= '0' && c <= '9':
		return d.str()
	default:
		return nil, d.fail(fmt.Sprintf("unexpected byte %q", c))
	}
}

// integer reads decimal digits up to the terminator, without leading zeros
// or a negative zero, and consumes the terminator.
func (d *bdecoder) integer(term byte) (int64, error) {
	start := d.pos
	for d.pos < len(d.b) && d.b[d.pos] != term && d.pos-start <= maxBencodeDigits {
		d.pos++
	}
	if d.pos >= len(d.b) || d.b[d.pos] != term {
		return 0, d.fail("unterminated or overlong integer")
	}
	s := string(d.b[start:d.pos])
	d.pos++
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || s[0] == '+' || s == "-0" || (len(s) > 1 && (s[0] == '0' || s[:2] == "-0")) {
		return 0, fmt.Errorf("%w: bad integer %q", errBencode, s)
	}
	return n, nil
}

func (d *bdecoder) str() (string, error) {
	n, err := d.integer(':')
	if err != nil {
		return "", err
	}
	if n < 0 || n > int64(len(d.b)-d.pos) {
		return "", d.fail(fmt.Sprintf("string length %d beyond the input", n))
	}
	s := string(d.b[d.pos : d.pos+int(n)])
	d.pos += int(n)
	return s, nil
}

func (d *bdecoder) list() ([]any, error) {
	var out []any
	for d.pos < len(d.b) && d.b[d.pos] != 'e' {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if d.pos >= len(d.b) {
		return nil, d.fail("unterminated list")
	}
	d.pos++
	return out, nil
}

// dict reads a dictionary's entries after its 'd'; seen, when not nil, is
// called with each key and the byte span of its raw value.
func (d *bdecoder) dict(seen func(key string, start, end int)) (map[string]any, error) {
	out := make(map[string]any)
	for d.pos < len(d.b) && d.b[d.pos] != 'e' {
		k, err := d.str()
		if err != nil {
			return nil, err
		}
		start := d.pos
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%w: duplicate key %q", errBencode, k)
		}
		out[k] = v
		if seen != nil {
			seen(k, start, d.pos)
		}
	}
	if d.pos >= len(d.b) {
		return nil, d.fail("unterminated dictionary")
	}
	d.pos++
	return out, nil
}

// infoHash returns the BitTorrent info hash of a .torrent's content: the
// SHA-1 of the raw bencoded "info" dictionary.
func infoHash(torrent []byte) ([20]byte, error) {
	var sum [20]byte
	if len(torrent) == 0 || torrent[0] != 'd' {
		return sum, fmt.Errorf("torrent: %w: not a dictionary", errBencode)
	}
	d := &bdecoder{b: torrent, pos: 1, depth: 1}
	start, end := -1, -1
	top, err := d.dict(func(k string, s, e int) {
		if k == "info" {
			start, end = s, e
		}
	})
	if err != nil {
		return sum, fmt.Errorf("torrent: %w", err)
	}
	if d.pos != len(torrent) {
		return sum, fmt.Errorf("torrent: %w: trailing data after the dictionary", errBencode)
	}
	if _, ok := top["info"].(map[string]any); !ok || start < 0 {
		return sum, errors.New("torrent: no info dictionary")
	}
	return sha1.Sum(torrent[start:end]), nil
}

// readBounded reads at most limit bytes of path, failing when it is larger.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("read %s: larger than %d bytes", path, limit)
	}
	return b, nil
}
