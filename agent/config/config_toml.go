package config

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"

	"github.com/fleetcast/fleetcast/internal/clip"
)

// Decoding the TOML file: unknown keys, their lines, and the shape limits
// that keep the TOML library's cost bounded.

// decode decodes data over Default, refusing what
// BurntSushi/toml lets through: unknown keys, keys that match a field only
// when ignoring case, and durations given as integers (nanoseconds).
func decode(data []byte) (*Config, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%d bytes is larger than the limit of %d bytes", len(data), MaxSize)
	}
	if !utf8.Valid(data) {
		return nil, errors.New("not valid UTF-8")
	}
	if err := checkShape(data); err != nil {
		return nil, err
	}
	c := Default()
	md, err := toml.Decode(string(data), &c)
	if err != nil {
		return nil, err
	}
	known := knownKeys()
	if unknown := unknownKeys(&md, known); len(unknown) > 0 {
		return nil, unknownError(string(data), &md, unknown)
	}
	for _, k := range md.Keys() {
		if len(k) == 1 && known[k.String()] == reflect.TypeFor[time.Duration]() && md.Type(k...) != "String" {
			return nil, fmt.Errorf("%s: want a duration string such as \"5m\", \"30s\" or \"500ms\"; got a TOML %s", k, strings.ToLower(md.Type(k...)))
		}
	}
	return &c, nil
}

// Bounds on what makes BurntSushi/toml slow: its time grows with the depth
// of each key, and its memory with the square of the depth (measured with
// v1.6.0: a key 16,000 levels deep took 12 GiB; 60,000 keys 500 levels deep,
// 6 s). A configuration needs a few of each.
const (
	maxDots    = 64 // outside strings and comments: dotted keys, table names, floats
	maxNesting = 16 // of [ and {: arrays, inline tables, table headers
)

// checkShape refuses data with more than maxDots dots or
// brackets nested more than maxNesting deep, outside strings and
// comments. It only needs to lex TOML well enough to bound the parser's work.
func checkShape(data []byte) error {
	dots, depth := 0, 0
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '#':
			if n := bytes.IndexByte(data[i:], '\n'); n > 0 {
				i += n
			} else {
				i = len(data)
			}
		case '"', '\'':
			i = skipString(data, i)
		case '.':
			dots++
		case '[', '{':
			depth++
		case ']', '}':
			depth = max(depth-1, 0)
		}
		if dots > maxDots {
			return fmt.Errorf("more than %d dots outside strings and comments: keys nested too deeply", maxDots)
		}
		if depth > maxNesting {
			return fmt.Errorf("arrays or tables nested more than %d deep", maxNesting)
		}
	}
	return nil
}

// skipString returns the index of the last byte of the TOML string
// that opens at data[i].
func skipString(data []byte, i int) int {
	q := data[i : i+1]
	if bytes.HasPrefix(data[i:], bytes.Repeat(q, 3)) {
		q = data[i : i+3]
	}
	for j := i + len(q); j < len(data); j++ {
		switch {
		case data[j] == '\\' && q[0] == '"':
			j++ // an escape in a basic string
		case data[j] == '\n' && len(q) == 1:
			return j
		case bytes.HasPrefix(data[j:], q):
			return j + len(q) - 1
		}
	}
	return len(data)
}

// knownKeys returns the keys that Config decodes, written as
// toml.Key.String does ("poll_interval", "subscription.product"), and their
// Go types.
func knownKeys() map[string]reflect.Type {
	known := make(map[string]reflect.Type)
	var add func(prefix string, t reflect.Type)
	add = func(prefix string, t reflect.Type) {
		for f := range t.Fields() {
			if f.Anonymous { // PeerConfig: its keys are the file's own
				add(prefix, f.Type)
				continue
			}
			key := prefix + f.Tag.Get("toml")
			known[key] = f.Type
			if f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct {
				add(key+".", f.Type.Elem())
			}
		}
	}
	add("", reflect.TypeFor[Config]())
	return known
}

// unknownKeys returns, in file order, the first key under each unknown
// name: of "[extra]" and "extra.a = 1" only "extra".
func unknownKeys(md *toml.MetaData, known map[string]reflect.Type) []toml.Key {
	seen := make(map[string]bool)
	var unknown []toml.Key
	for _, k := range md.Keys() {
		n := 1
		for n < len(k) && known[k[:n].String()] != nil {
			n++
		}
		if name := k[:n].String(); known[name] == nil && !seen[name] {
			seen[name] = true
			unknown = append(unknown, k)
		}
	}
	return unknown
}

// Bounds on naming unknown keys: a file of junk gets a short message.
const (
	maxUnknownNamed = 20      // keys named in the error
	maxUnknownLines = 8       // keys whose line is looked up (a decode each)
	lineBudget      = 2 << 20 // bytes decoded in all to look up lines
)

func unknownError(data string, md *toml.MetaData, unknown []toml.Key) error {
	var names []string
	for i, k := range unknown[:min(len(unknown), maxUnknownNamed)] {
		name := clip.String(k.String(), 64)
		if i < min(maxUnknownLines, lineBudget/max(len(data), 1)) {
			if line := keyLine(data, md, k); line > 0 {
				name += " (line " + strconv.Itoa(line) + ")"
			}
		}
		names = append(names, name)
	}
	if n := len(unknown) - len(names); n > 0 {
		names = append(names, fmt.Sprintf("and %d more", n))
	}
	s := "s"
	if len(unknown) == 1 {
		s = ""
	}
	return fmt.Errorf("unknown key%s %s; keys are case-sensitive, see docs/CONFIG.md", s, strings.Join(names, ", "))
}

// keyLine returns the line on which key is defined, or 0 when that
// cannot be told. BurntSushi/toml records where each key is but tells only
// in decode errors, so this decodes data again into a type whose one field
// is key, holding a lineProbe, which always fails to decode.
func keyLine(data string, md *toml.MetaData, key toml.Key) int {
	if len(key) > 4 {
		return 0 // Config nests two deep; do not build deep types for junk
	}
	t := reflect.TypeFor[lineProbe]()
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == "" || key[i] == "-" || strings.Contains(key[i], ",") || foldSibling(md, key[:i+1]) {
			return 0 // not expressible as a struct tag, or ambiguous: toml matches fields ignoring case
		}
		if typ := md.Type(key[:i+1]...); i < len(key)-1 && (typ == "Array" || typ == "ArrayHash") {
			t = reflect.SliceOf(t)
		}
		t = reflect.StructOf([]reflect.StructField{{Name: "F", Type: t, Tag: reflect.StructTag("toml:" + strconv.Quote(key[i]))}})
	}
	_, err := toml.Decode(data, reflect.New(t).Interface())
	var pe toml.ParseError
	if errors.As(err, &pe) && pe.LastKey == key.String() {
		return pe.Position.Line
	}
	return 0
}

// foldSibling reports whether another key of the same table differs
// from key's last part only in case.
func foldSibling(md *toml.MetaData, key toml.Key) bool {
	n := len(key) - 1
	for _, k := range md.Keys() {
		if len(k) > n && k[n] != key[n] && strings.EqualFold(k[n], key[n]) && slices.Equal(k[:n], key[:n]) {
			return true
		}
	}
	return false
}

// lineProbe is the value type of keyLine's probe.
type lineProbe struct{}

func (lineProbe) UnmarshalTOML(any) error { return errors.New("probe") }
