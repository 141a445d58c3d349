// Package strictjson decodes JSON documents strictly: one value, no unknown
// fields, no trailing data. Every fleetcast parser of signed or untrusted JSON
// uses it, so that two implementations cannot read one document differently.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Unmarshal decodes exactly one JSON value from data into v, refusing unknown
// object fields, objects that repeat a key (compared case-insensitively, as
// encoding/json matches fields), and anything but white space after the value.
func Unmarshal(data []byte, v any) error {
	if err := checkKeys(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("unexpected data after the JSON value")
	}
	return nil
}

// ReadAll reads r to the end, failing with errTooLarge (wrapped with the
// limit) when it holds more than limit bytes. It never buffers more than
// limit+1 bytes.
func ReadAll(r io.Reader, limit int64, errTooLarge error) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", errTooLarge, limit)
	}
	return b, nil
}

// checkKeys scans the document and refuses an object that holds the same key
// twice, or two keys that differ only in case: encoding/json would silently
// keep one of them, and another parser might keep the other. It only looks
// at keys; syntax errors are left for the decoder to report. It allocates
// nothing for keys without escapes, so a manifest of 100,000 chunks costs
// little over the decode itself.
func checkKeys(data []byte) error {
	var stack []frame
	expectKey := false
	for i := 0; i < len(data); {
		switch c := data[i]; c {
		case '{', '[':
			stack = push(stack, c == '{')
			expectKey = c == '{'
			i++
		case '}', ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			expectKey = false
			i++
		case ',':
			expectKey = len(stack) > 0 && stack[len(stack)-1].object
			i++
		case '"':
			end := stringEnd(data, i)
			if end < 0 {
				return nil // unterminated: the decoder reports it
			}
			if expectKey {
				if err := stack[len(stack)-1].add(data[i:end]); err != nil {
					return err
				}
				expectKey = false
			}
			i = end
		default: // white space, ':', numbers, true, false, null
			i++
		}
	}
	return nil
}

// frame is one open object or array; keys are those seen so far in an object.
type frame struct {
	object bool
	keys   [][]byte
}

// push opens a frame, reusing the key slice of an earlier frame at that depth.
func push(stack []frame, object bool) []frame {
	if len(stack) < cap(stack) {
		stack = stack[:len(stack)+1]
		f := &stack[len(stack)-1]
		f.object, f.keys = object, f.keys[:0]
		return stack
	}
	return append(stack, frame{object: object})
}

// add records a key, given as its quoted JSON text.
func (f *frame) add(quoted []byte) error {
	key := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(key, '\\') >= 0 {
		var s string
		if err := json.Unmarshal(quoted, &s); err != nil {
			return err
		}
		key = []byte(s)
	}
	for _, k := range f.keys {
		if bytes.EqualFold(k, key) {
			return fmt.Errorf("object key %q appears more than once (keys are compared ignoring case)", key)
		}
	}
	f.keys = append(f.keys, key)
	return nil
}

// stringEnd returns the index just past the string starting at data[i] == '"',
// or -1 when it does not end.
func stringEnd(data []byte, i int) int {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}
