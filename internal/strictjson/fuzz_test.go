package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

// FuzzCheckKeys compares the allocation-free key scanner with a reference
// built on encoding/json's tokenizer: on every valid JSON document they must
// agree whether it holds a null, an object that repeats a key, or nesting
// deeper than MaxDepth.
func FuzzCheckKeys(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"b":[{"c":2,"C":3}]}`, `{"a":{"a":{"a":1}},"b":"\"a\""}`, `[{"x":1},{"x":2}]`,
		`{"\u0061":1,"a":2}`, `{"k":"\\","K":1}`, `{"":1,"":2}`, `"str"`, `[1,2,[3,{"z":null}]]`,
		`{"payloadType":"t","payload":"cA==","signatures":[{"keyid":"k","sig":"cw=="}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			checkKeys(data, nil) // must not panic
			return
		}
		got := checkKeys(data, nil) != nil
		want := referenceRejects(t, data)
		if got != want {
			t.Fatalf("checkKeys rejects=%v, reference rejects=%v, for %q", got, want, data)
		}
	})
}

func referenceRejects(t *testing.T, data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // 1e700 is valid JSON but no float64
	type level struct {
		object bool
		keys   []string
	}
	var stack []*level
	expectKey := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return false
		}
		if err != nil {
			t.Fatalf("reference tokenizer on valid JSON: %v", err)
		}
		if tok == nil {
			return true // null
		}
		top := len(stack) - 1
		if k, isString := tok.(string); expectKey && isString && top >= 0 && stack[top].object {
			for _, seen := range stack[top].keys {
				if strings.EqualFold(seen, k) {
					return true
				}
			}
			stack[top].keys = append(stack[top].keys, k)
			expectKey = false
			continue
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) >= MaxDepth {
				return true
			}
			stack = append(stack, &level{object: tok == json.Delim('{')})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:top]
		}
		expectKey = len(stack) > 0 && stack[len(stack)-1].object
	}
}
