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
// object fields and anything but white space after the value.
func Unmarshal(data []byte, v any) error {
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
