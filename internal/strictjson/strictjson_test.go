package strictjson

import (
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
		{`{"name":"x","NAME":"y"}`, "more than once"},
		{`{"list":[{"a":1,"a":2}]}`, "more than once"},
		{`{"inner":{"a":1,"A":2}}`, "more than once"},
		{`{"name":"x","extra":1}`, "unknown field"},
		{`{"name":"x"}{}`, "after the JSON value"},
		{`{"name":"x"`, "EOF"},
		{``, "EOF"},
		{`{"name":"a","list":[{"a":1}],"inner":{"a":1},"x":[{"b":1,"b":2}]}`, "more than once"},
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
		`{"n\u0061me":"x","NAME":"y"}`,
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
