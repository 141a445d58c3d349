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
	"strings"
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

// checkKeys walks the document's tokens and refuses an object that holds the
// same key twice, or two keys that differ only in case: encoding/json would
// silently keep one of them, and another parser might keep the other.
func checkKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	var stack []map[string]bool // one set of keys per open object; nil for arrays
	expectKey := false
	for {
		tok, err := dec.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err // a syntax error; Decode reports it again with context
		}
		if len(stack) > 0 && stack[len(stack)-1] != nil && expectKey {
			if key, ok := tok.(string); ok {
				if err := addKey(stack[len(stack)-1], key); err != nil {
					return err
				}
				expectKey = false
				continue
			}
		}
		stack, expectKey = step(stack, tok)
	}
}

// step updates the stack of open objects and arrays after a value token and
// says whether the next token is an object key.
func step(stack []map[string]bool, tok json.Token) ([]map[string]bool, bool) {
	switch tok {
	case json.Delim('{'):
		return append(stack, map[string]bool{}), true
	case json.Delim('['):
		return append(stack, nil), false
	case json.Delim('}'), json.Delim(']'):
		stack = stack[:len(stack)-1]
	}
	return stack, len(stack) > 0 && stack[len(stack)-1] != nil
}

func addKey(seen map[string]bool, key string) error {
	folded := strings.ToLower(key)
	if seen[folded] {
		return fmt.Errorf("object key %q appears more than once (keys are compared ignoring case)", key)
	}
	seen[folded] = true
	return nil
}
