package strictjson

import (
	"fmt"
	"strings"
	"testing"
)

func TestUnmarshal(t *testing.T) {
	type inner struct {
		A int `json:"a"`
	}
	type doc struct {
		Name  string  `json:"name"`
		List  []inner `json:"list"`
		Inner inner   `json:"inner"`
	}
	for _, tc := range []struct {
		in, wantErr string
	}{
		{`{"name":"x","list":[{"a":1},{"a":2}],"inner":{"a":3}}`, ""},
		{` {"name":"x"} ` + "\n", ""},
		{`{"name":"x","name":"y"}`, "more than once"},
		{`{"name":"x","NAME":"y"}`, "unknown field"},
		{`{"list":[{"a":1,"a":2}]}`, "more than once"},
		{`{"inner":{"a":1,"A":2}}`, "unknown field"},
		{`{"name":"x","extra":1}`, "unknown field"},
		{`{"name":"x"}{}`, "after the JSON value"},
		{`{"name":"x"`, "EOF"},
		{``, "EOF"},
		{`{"name":"a","list":[{"a":1}],"inner":{"a":1},"x":[{"b":1,"b":2}]}`, "unknown field"},
	} {
		var d doc
		err := Unmarshal([]byte(tc.in), &d)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("Unmarshal(%s): %v", tc.in, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("Unmarshal(%s) = %v, want error containing %q", tc.in, err, tc.wantErr)
		}
	}
}

func TestReadAllLimit(t *testing.T) {
	errBig := errTest("too big")
	if b, err := ReadAll(strings.NewReader("12345"), 5, errBig); err != nil || string(b) != "12345" {
		t.Fatalf("ReadAll at the limit: %q, %v", b, err)
	}
	if _, err := ReadAll(strings.NewReader("123456"), 5, errBig); err == nil || !strings.Contains(err.Error(), "too big") {
		t.Fatalf("ReadAll over the limit: %v", err)
	}
}

type errTest string

func (e errTest) Error() string { return string(e) }

func TestUnmarshalEscapedDuplicateKeys(t *testing.T) {
	type doc struct {
		Name string `json:"name"`
	}
	for _, in := range []string{
		`{"name":"x","\u006eame":"y"}`,
		`{"n\u0061me":"x","name":"y"}`,
		`{"name":"a \"quoted\" {value}","name":"y"}`,
	} {
		var d doc
		if err := Unmarshal([]byte(in), &d); err == nil || !strings.Contains(err.Error(), "more than once") {
			t.Errorf("Unmarshal(%s) = %v, want a repeated-key error", in, err)
		}
	}
	var d doc
	if err := Unmarshal([]byte(`{"name":"a \"b\" {c} [d] \\"}`), &d); err != nil || d.Name != `a "b" {c} [d] \` {
		t.Errorf("escaped string value: %q, %v", d.Name, err)
	}
}

func TestUnmarshalExactNamesNullAndUTF8(t *testing.T) {
	type inner struct {
		Sig string `json:"sig"`
	}
	type doc struct {
		KeyID string  `json:"keyid"`
		List  []inner `json:"list"`
	}
	for _, tc := range []struct {
		in, wantErr string
	}{
		{`{"keyid":"a","list":[{"sig":"b"}]}`, ""},
		{`{"KEYID":"a"}`, "unknown field"},
		{`{"\u212aeyid":"a"}`, "unknown field"},     // Kelvin sign: encoding/json would match keyid
		{`{"list":[{"ſig":"b"}]}`, "unknown field"}, // long s: encoding/json would match sig
		{`{"keyid":null}`, "null is not allowed"},
		{`{"keyid":"a","list":null}`, "null is not allowed"},
		{`{"keyid":"null"}`, ""},
		{"{\"keyid\":\"\xff\"}", "UTF-8"},
	} {
		var d doc
		err := Unmarshal([]byte(tc.in), &d)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("Unmarshal(%s): %v", tc.in, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("Unmarshal(%s) = %v, want error containing %q", tc.in, err, tc.wantErr)
		}
	}
}

// TestManyKeysIsLinear checks that an object with very many keys is refused
// quickly: the repeated-key check runs before any signature is verified, so
// it must not be quadratic.
func TestManyKeysIsLinear(t *testing.T) {
	var b strings.Builder
	b.WriteString("{")
	for i := range 200000 {
		fmt.Fprintf(&b, `"k%d":1,`, i)
	}
	b.WriteString(`"k0":1}`)
	err := checkKeys([]byte(b.String()), nil)
	if err == nil || !strings.Contains(err.Error(), "more than once") {
		t.Fatalf("checkKeys: %v", err)
	}
}

func BenchmarkManyKeys(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("{")
	for i := range 100000 {
		fmt.Fprintf(&sb, `"k%d":1,`, i)
	}
	sb.WriteString(`"end":1}`)
	data := []byte(sb.String())
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := checkKeys(data, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDeepNestingRefusedCheaply(t *testing.T) {
	deep := strings.Repeat("[", 1_000_000)
	var v []any
	err := Unmarshal([]byte(deep), &v)
	if err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("Unmarshal of a million '[': %v", err)
	}
	allocs := testing.AllocsPerRun(3, func() { checkKeys([]byte(deep), nil) })
	if allocs > 10 {
		t.Fatalf("checkKeys allocated %v times on deep nesting", allocs)
	}
	var ok struct {
		A [][][]int `json:"a"`
	}
	if err := Unmarshal([]byte(`{"a":[[[1]]]}`), &ok); err != nil {
		t.Fatal(err)
	}
}
