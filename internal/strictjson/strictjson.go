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
	"reflect"
	"unicode/utf8"
)

// Unmarshal decodes exactly one JSON value from data into v. Beyond
// encoding/json it refuses: invalid UTF-8; null; object keys that are not
// exactly (case-sensitively) the JSON name of a field of v's types, where
// encoding/json would match them ignoring case; objects that repeat a key;
// unknown fields; and anything but white space after the value.
func Unmarshal(data []byte, v any) error {
	if !utf8.Valid(data) {
		return errors.New("not valid UTF-8")
	}
	if err := checkKeys(data, fieldNames(reflect.TypeOf(v))); err != nil {
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

// MaxDepth bounds how deeply objects and arrays may nest. fleetcast's formats
// nest at most 4 levels; the check runs before any other work, so a document
// of 24 MiB of "[" costs nothing.
const MaxDepth = 32

// smallObject is the number of keys up to which an object's keys are compared
// pairwise; larger objects use a map, so the check stays linear.
const smallObject = 16

// checkKeys scans the document's keys: each must be in names (when names is
// not nil) and appear once in its object (compared ignoring case, as
// encoding/json matches fields). It also refuses null. Syntax errors are left
// for the decoder to report. It allocates nothing for small objects whose
// keys have no escapes, so a manifest of 100,000 chunks costs little over the
// decode itself.
func checkKeys(data []byte, names map[string]bool) error {
	stack := make([]frame, 0, MaxDepth) // one allocation, never grown: depth is capped
	expectKey := false
	for i := 0; i < len(data); {
		switch c := data[i]; c {
		case '{', '[':
			if len(stack) >= MaxDepth {
				return fmt.Errorf("nested deeper than %d levels", MaxDepth)
			}
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
				if err := stack[len(stack)-1].add(data[i:end], names); err != nil {
					return err
				}
				expectKey = false
			}
			i = end
		case 'n':
			return errors.New("null is not allowed")
		default: // white space, ':', numbers, true, false
			i++
		}
	}
	return nil
}

// frame is one open object or array; keys are those seen so far in an object,
// in a slice while few and in a map (by lowercase key) beyond smallObject.
type frame struct {
	object bool
	keys   [][]byte
	many   map[string]struct{}
}

// push opens a frame, reusing the key slice of an earlier frame at that depth.
func push(stack []frame, object bool) []frame {
	if len(stack) < cap(stack) {
		stack = stack[:len(stack)+1]
		f := &stack[len(stack)-1]
		f.object, f.keys, f.many = object, f.keys[:0], nil
		return stack
	}
	return append(stack, frame{object: object})
}

// add records a key, given as its quoted JSON text.
func (f *frame) add(quoted []byte, names map[string]bool) error {
	key := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(key, '\\') >= 0 {
		var s string
		if err := json.Unmarshal(quoted, &s); err != nil {
			return err
		}
		key = []byte(s)
	}
	if names != nil && !names[string(key)] {
		return fmt.Errorf("unknown field %q (field names are case-sensitive)", key)
	}
	if f.seen(key) {
		return fmt.Errorf("object key %q appears more than once (keys are compared ignoring case)", key)
	}
	return nil
}

// seen reports whether key was already in the object, and records it.
func (f *frame) seen(key []byte) bool {
	if f.many == nil && len(f.keys) < smallObject {
		for _, k := range f.keys {
			if bytes.EqualFold(k, key) {
				return true
			}
		}
		f.keys = append(f.keys, key)
		return false
	}
	if f.many == nil {
		f.many = make(map[string]struct{}, 2*smallObject)
		for _, k := range f.keys {
			f.many[string(bytes.ToLower(k))] = struct{}{}
		}
	}
	folded := string(bytes.ToLower(key))
	if _, ok := f.many[folded]; ok {
		return true
	}
	f.many[folded] = struct{}{}
	return false
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
