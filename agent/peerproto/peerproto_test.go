package peerproto

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/fleetcast/fleetcast/manifest"
)

// validPeerState is a state with two releases that ParsePeerState accepts.
func validPeerState() State {
	return State{Proto: Proto, AgentID: "0123456789abcdef", FleetID: "open", Version: 7,
		Releases: []ReleaseHave{
			{ReleaseID: manifest.ChannelID{Product: "app", Channel: "stable"}.Release(3), Chunks: 10,
				Have: EncodeBitmap(bitsOf(10, 0, 1, 9)), Fetching: EncodeBitmap(bitsOf(10, 2))},
			{ReleaseID: manifest.ChannelID{Product: "tool", Channel: "beta"}.Release(1), Chunks: 1,
				Have: EncodeBitmap(bitsOf(1, 0)), Fetching: EncodeBitmap(bitsOf(1))},
		}}
}

// bitsOf returns n bits with those at set true.
func bitsOf(n int, set ...int) []bool {
	b := make([]bool, n)
	for _, i := range set {
		b[i] = true
	}
	return b
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParsePeerState(t *testing.T) {
	valid := mustJSON(t, validPeerState())
	edit := func(f func(st *State)) []byte {
		st := validPeerState()
		f(&st)
		return mustJSON(t, st)
	}
	rel := func(f func(r *ReleaseHave)) []byte {
		return edit(func(st *State) { f(&st.Releases[0]) })
	}
	b64 := base64.StdEncoding.EncodeToString
	tests := []struct {
		name string
		data []byte
		want string // substring of the error; "" when the state is valid
	}{
		{"valid", valid, ""},
		{"valid, trailing newline", append(bytes.Clone(valid), '\n'), ""},
		{"valid, closed fleet", edit(func(st *State) { st.FleetID = "fedcba9876543210" }), ""},
		{"valid, no releases", edit(func(st *State) { st.Releases = nil }), ""},
		{"valid, most releases", edit(func(st *State) { st.Releases = manyReleases(MaxReleases) }), ""},
		{"valid, most chunks", rel(func(r *ReleaseHave) {
			r.Chunks = manifest.MaxChunks
			r.Have = EncodeBitmap(bitsOf(manifest.MaxChunks, 0, manifest.MaxChunks-1))
			r.Fetching = EncodeBitmap(bitsOf(manifest.MaxChunks))
		}), ""},
		{"too large", append(bytes.Clone(valid), bytes.Repeat([]byte(" "), MaxState)...), "limit"},
		{"empty", nil, "EOF"},
		{"not an object", []byte(`[1,2]`), "cannot unmarshal"},
		{"unknown field", []byte(`{"proto":"` + Proto + `","extra":1}`), "unknown field"},
		{"unknown release field", bytes.Replace(valid, []byte(`"chunks":10,`), []byte(`"chunks":10,"size":1,`), 1), "unknown field"},
		{"trailing data", append(bytes.Clone(valid), []byte(` {}`)...), "data after"},
		{"truncated", valid[:len(valid)-1], "unexpected EOF"},
		{"wrong proto", edit(func(st *State) { st.Proto = "fleetcast-peer/2" }), "protocol"},
		{"no proto", edit(func(st *State) { st.Proto = "" }), "protocol"},
		{"agent id uppercase", edit(func(st *State) { st.AgentID = "0123456789ABCDEF" }), "bad agent id"},
		{"agent id short", edit(func(st *State) { st.AgentID = "0123456789abcde" }), "bad agent id"},
		{"agent id long", edit(func(st *State) { st.AgentID = "0123456789abcdef0" }), "bad agent id"},
		{"agent id open", edit(func(st *State) { st.AgentID = "open" }), "bad agent id"},
		{"fleet id empty", edit(func(st *State) { st.FleetID = "" }), "fleet id"},
		{"fleet id not hex", edit(func(st *State) { st.FleetID = "0123456789abcdeg" }), "fleet id"},
		{"fleet id Open", edit(func(st *State) { st.FleetID = "Open" }), "fleet id"},
		{"too many releases", edit(func(st *State) { st.Releases = manyReleases(MaxReleases + 1) }), "releases, limit"},
		{"product uppercase", rel(func(r *ReleaseHave) { r.Product = "App" }), "bad release"},
		{"product empty", rel(func(r *ReleaseHave) { r.Product = "" }), "bad release"},
		{"product path", rel(func(r *ReleaseHave) { r.Product = "../app" }), "bad release"},
		{"product reserved", rel(func(r *ReleaseHave) { r.Product = "roots" }), "bad release"},
		{"channel bad", rel(func(r *ReleaseHave) { r.Channel = "a/b" }), "bad release"},
		{"sequence 0", rel(func(r *ReleaseHave) { r.Sequence = 0 }), "bad release"},
		{"sequence negative", bytes.Replace(valid, []byte(`"sequence":3`), []byte(`"sequence":-3`), 1), "cannot unmarshal"},
		{"chunks 0", rel(func(r *ReleaseHave) { r.Chunks, r.Have, r.Fetching = 0, "", "" }), "0 chunks"},
		{"chunks negative", rel(func(r *ReleaseHave) { r.Chunks = -1 }), "-1 chunks"},
		{"chunks over MaxChunks", rel(func(r *ReleaseHave) {
			r.Chunks = manifest.MaxChunks + 1
			r.Have = EncodeBitmap(make([]bool, r.Chunks))
			r.Fetching = r.Have
		}), fmt.Sprintf("%d chunks", manifest.MaxChunks+1)},
		{"chunks not an integer", bytes.Replace(valid, []byte(`"chunks":10`), []byte(`"chunks":1e1`), 1), "cannot unmarshal"},
		{"have one byte short", rel(func(r *ReleaseHave) { r.Have = b64([]byte{1}) }), "have: bitmap of 10 chunks"},
		{"have one byte long", rel(func(r *ReleaseHave) { r.Have = b64([]byte{1, 0, 0}) }), "have: bitmap of 10 chunks"},
		{"have empty", rel(func(r *ReleaseHave) { r.Have = "" }), "have: bitmap"},
		{"have bit past the end", rel(func(r *ReleaseHave) { r.Have = b64([]byte{0, 1 << 2}) }), "have: bitmap: bits set past"},
		{"have last bit past the end", rel(func(r *ReleaseHave) { r.Have = b64([]byte{0, 0x80}) }), "have: bitmap: bits set past"},
		{"have bad base64", rel(func(r *ReleaseHave) { r.Have = "!!!!" }), "have: bitmap of 10 chunks: not base64"},
		{"have url base64", rel(func(r *ReleaseHave) { r.Have = "__8=" }), "have: bitmap of 10 chunks: not base64"},
		{"have unpadded", rel(func(r *ReleaseHave) { r.Have = "AAA" }), "have: bitmap of 10 chunks"},
		{"have non-canonical padding bits", rel(func(r *ReleaseHave) { r.Have = "AAB=" }), "have: bitmap of 10 chunks: not base64"},
		{"have with newline", rel(func(r *ReleaseHave) { r.Have = "AA\n=" }), "have: bitmap of 10 chunks: not base64"},
		{"fetching wrong length", rel(func(r *ReleaseHave) { r.Fetching = b64([]byte{0, 0, 0}) }), "fetching: bitmap of 10 chunks"},
		{"fetching bits past the end", rel(func(r *ReleaseHave) { r.Fetching = b64([]byte{0, 0xff}) }), "fetching: bitmap: bits set past"},
		{"fetching bad base64", rel(func(r *ReleaseHave) { r.Fetching = "AA*=" }), "fetching: bitmap of 10 chunks: not base64"},
		{"fetching missing", []byte(strings.Replace(string(valid), `,"fetching":"`+EncodeBitmap(bitsOf(10, 2))+`"`, "", 1)), "fetching: bitmap"},
		{"second release bad", edit(func(st *State) { st.Releases[1].Sequence = 0 }), "bad release"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, maps, err := ParseState(tt.data)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "peer state: ") {
					t.Fatalf("error %v, want one with %q", err, tt.want)
				}
				if st != nil || maps != nil {
					t.Errorf("refused state returned %v, %v", st, maps)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(maps) != len(st.Releases) {
				t.Fatalf("%d bitmaps for %d releases", len(maps), len(st.Releases))
			}
			for i, r := range st.Releases {
				if got := EncodeBitmap(bitsFrom(maps[i].Have, r.Chunks)); got != r.Have {
					t.Errorf("release %d: have decodes to %s, sent %s", i, got, r.Have)
				}
				if got := EncodeBitmap(bitsFrom(maps[i].Fetching, r.Chunks)); got != r.Fetching {
					t.Errorf("release %d: fetching decodes to %s, sent %s", i, got, r.Fetching)
				}
			}
		})
	}
}

func TestParsePeerStateFields(t *testing.T) {
	st, maps, err := ParseState(mustJSON(t, validPeerState()))
	if err != nil {
		t.Fatal(err)
	}
	if want := validPeerState(); !reflect.DeepEqual(*st, want) {
		t.Errorf("parsed %+v, want %+v", *st, want)
	}
	for i := range 10 {
		if got, want := BitSet(maps[0].Have, i), i == 0 || i == 1 || i == 9; got != want {
			t.Errorf("have bit %d = %v, want %v", i, got, want)
		}
		if got, want := BitSet(maps[0].Fetching, i), i == 2; got != want {
			t.Errorf("fetching bit %d = %v, want %v", i, got, want)
		}
	}
	if n := BitCount(maps[0].Have); n != 3 {
		t.Errorf("have count %d, want 3", n)
	}
	if !BitSet(maps[1].Have, 0) || BitCount(maps[1].Fetching) != 0 {
		t.Errorf("second release bitmaps %+v", maps[1])
	}
}

// manyReleases returns n valid releases of one chunk.
func manyReleases(n int) []ReleaseHave {
	out := make([]ReleaseHave, n)
	for i := range out {
		out[i] = ReleaseHave{ReleaseID: manifest.ChannelID{Product: "app", Channel: "stable"}.Release(uint64(i + 1)), Chunks: 1, Have: "AQ==", Fetching: "AA=="}
	}
	return out
}

// bitsFrom is the inverse of encodeBitmap's packing: n bits of b.
func bitsFrom(b []byte, n int) []bool {
	out := make([]bool, n)
	for i := range out {
		out[i] = BitSet(b, i)
	}
	return out
}

func TestBitmapRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	lengths := []int{}
	for n := 1; n <= 17; n++ {
		lengths = append(lengths, n)
	}
	lengths = append(lengths, 1000, manifest.MaxChunks)
	for _, n := range lengths {
		patterns := map[string][]bool{"none": make([]bool, n), "all": make([]bool, n), "random": make([]bool, n)}
		for i := range n {
			patterns["all"][i] = true
			patterns["random"][i] = r.IntN(2) == 1
		}
		for name, have := range patterns {
			t.Run(fmt.Sprintf("%d/%s", n, name), func(t *testing.T) {
				s := EncodeBitmap(have)
				if want := base64.StdEncoding.EncodedLen((n + 7) / 8); len(s) != want {
					t.Fatalf("encoded length %d, want %d", len(s), want)
				}
				b, err := DecodeBitmap(s, n)
				if err != nil {
					t.Fatal(err)
				}
				if got := bitsFrom(b, n); !reflect.DeepEqual(got, have) {
					t.Fatalf("round trip changed the bits")
				}
				count := 0
				for _, h := range have {
					if h {
						count++
					}
				}
				if BitCount(b) != count {
					t.Errorf("bitCount %d, want %d", BitCount(b), count)
				}
				// The same string is refused for any other length, except
				// lengths with the same byte count whose extra bits are clear.
				if n%8 != 0 && have[n-1] {
					if _, err := DecodeBitmap(s, n-1); err == nil {
						t.Errorf("bitmap with bit %d set accepted as %d bits", n-1, n-1)
					}
				}
				if _, err := DecodeBitmap(s, n+8); err == nil {
					t.Errorf("bitmap of %d bits accepted as %d bits", n, n+8)
				}
			})
		}
	}
}

// FuzzParseState checks that ParsePeerState never panics and that a
// state it accepts, encoded again with encoding/json, parses to the same
// state and bitmaps. Seeds are in testdata/fuzz/FuzzParseState.
func FuzzParseState(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		st, maps, err := ParseState(data)
		if err != nil {
			if st != nil || maps != nil {
				t.Fatalf("refused state returned values: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "peer state: ") {
				t.Fatalf("error without peer state: prefix: %v", err)
			}
			return
		}
		if len(maps) != len(st.Releases) {
			t.Fatalf("%d bitmaps for %d releases", len(maps), len(st.Releases))
		}
		b, err := json.Marshal(st)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		st2, maps2, err := ParseState(b)
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, b)
		}
		if !reflect.DeepEqual(st, st2) || !reflect.DeepEqual(maps, maps2) {
			t.Fatalf("re-parse differs:\nfirst  %+v\nsecond %+v\nencoded: %s", st, st2, b)
		}
	})
}

// TestPeerStateFuzzSeeds checks the seed corpus: seeds named valid_* parse,
// the others are refused.
func TestPeerStateFuzzSeeds(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzParseState", "*"))
	if err != nil || len(files) < 6 {
		t.Fatalf("%d seeds (%v), want at least 6", len(files), err)
	}
	for _, p := range files {
		t.Run(filepath.Base(p), func(t *testing.T) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			header, body, _ := strings.Cut(strings.TrimSuffix(string(b), "\n"), "\n")
			q, ok := strings.CutPrefix(body, "[]byte(")
			q, ok2 := strings.CutSuffix(q, ")")
			if header != "go test fuzz v1" || !ok || !ok2 {
				t.Fatalf("not a go test fuzz v1 file of one []byte")
			}
			data, err := strconv.Unquote(q)
			if err != nil {
				t.Fatalf("unquote: %v", err)
			}
			_, _, err = ParseState([]byte(data))
			if valid := strings.HasPrefix(filepath.Base(p), "valid_"); valid != (err == nil) {
				t.Errorf("ParsePeerState: %v; seed named valid: %v", err, valid)
			}
		})
	}
}

func TestNewBits(t *testing.T) {
	for _, tt := range []struct {
		a, b []byte
		want bool
	}{
		{[]byte{0b0011}, []byte{0b0011}, false},
		{[]byte{0b0011}, []byte{0b0001}, false},
		{[]byte{0b0001}, []byte{0b0011}, true},
		{[]byte{0, 0}, []byte{0, 0x80}, true},
		{nil, nil, false},
		{[]byte{0}, []byte{0, 0}, true},
	} {
		if got := NewBits(tt.a, tt.b); got != tt.want {
			t.Errorf("NewBits(%08b, %08b) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
