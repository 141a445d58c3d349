package publisher

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/fleetcast/fleetcast/manifest"
)

// kiB is 1024 bytes, for readable chunking parameters.
const kiB = 1 << 10

// small is a chunking with small sizes, for tests that want many chunks.
var small = manifest.Chunking{Algorithm: manifest.ChunkingFastCDC, Min: 4 * kiB, Avg: 16 * kiB, Max: 64 * kiB}

// katChunking and katSeed define the known-answer vector in docs/SPEC.md.
var (
	katChunking = manifest.Chunking{Algorithm: manifest.ChunkingFastCDC, Min: 64 * kiB, Avg: 256 * kiB, Max: 1024 * kiB}
	katSeed     = [32]byte([]byte("fleetcast-chunking-test-vector-1"))
)

// Known answers, from docs/SPEC.md ("Chunking"). Computed once by this
// implementation and checked against an independent one; never regenerate
// them to make a test pass.
const (
	gear0        = "a6b18d38ce6763af"
	gear255      = "96e87504051d220e"
	gearTableSum = "bc120bc8dfc975993095b27e6f29fb84b70026c236fe5baf6acf5244fba5d4d5"

	katInputSHA256 = "acaeb68f19e5d61053b76507371e0a1b3f82773b6bf0ac2de93cb91bb5f52101"
)

var katSizes = []int{
	291632, 90262, 307033, 410213, 183861, 272322, 138207, 303552,
	525106, 110881, 305254, 403865, 474273, 344873, 198369, 368747,
	262713, 296832, 262623, 365411, 283111, 272778, 309821, 350716,
	263144, 356198, 294210, 339662, 2939,
}

// randomBytes returns n bytes of the ChaCha8 stream for seed.
func randomBytes(seed [32]byte, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8(seed).Read(b)
	return b
}

// seedOf makes a ChaCha8 seed from a short label.
func seedOf(label string) [32]byte {
	var s [32]byte
	copy(s[:], label)
	return s
}

// chunkAll runs a Chunker over r and returns copies of all chunks.
func chunkAll(t testing.TB, r io.Reader, c manifest.Chunking) [][]byte {
	t.Helper()
	k, err := NewChunker(r, c)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		b, err := k.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		out = append(out, bytes.Clone(b))
	}
}

// sizesOf returns the lengths of chunks.
func sizesOf(chunks [][]byte) []int {
	out := make([]int, len(chunks))
	for i, b := range chunks {
		out[i] = len(b)
	}
	return out
}

// referenceBoundary is docs/SPEC.md's cut rule written as plainly as
// possible, one byte at a time, to check the optimised Boundary against.
func referenceBoundary(c manifest.Chunking, data []byte) int {
	maskS, maskL := Masks(c.Avg)
	var h uint64
	for i := c.Min; i < len(data) && i < c.Max; i++ {
		h = h<<1 + gear[data[i]]
		mask := maskL
		if i < c.Avg {
			mask = maskS
		}
		if h&mask == 0 {
			return i + 1
		}
	}
	return min(len(data), c.Max)
}

func TestGearTable(t *testing.T) {
	h := sha256.New()
	for _, v := range gear {
		h.Write(binary.BigEndian.AppendUint64(nil, v))
	}
	got := hex.EncodeToString(h.Sum(nil))
	checks := []struct {
		name      string
		got, want string
	}{
		{"gear[0]", hex.EncodeToString(binary.BigEndian.AppendUint64(nil, gear[0])), gear0},
		{"gear[255]", hex.EncodeToString(binary.BigEndian.AppendUint64(nil, gear[255])), gear255},
		{"SHA-256 of table", got, gearTableSum},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %s, want %s", c.name, c.got, c.want)
		}
	}
}

func TestMasks(t *testing.T) {
	tests := []struct {
		avg          int
		maskS, maskL uint64
	}{
		{16 * kiB, 0xffff_0000_0000_0000, 0xfff0_0000_0000_0000},
		{256 * kiB, 0xffff_f000_0000_0000, 0xffff_0000_0000_0000},
		{1024 * kiB, 0xffff_fc00_0000_0000, 0xffff_c000_0000_0000},
	}
	for _, tt := range tests {
		s, l := Masks(tt.avg)
		if s != tt.maskS || l != tt.maskL {
			t.Errorf("Masks(%d) = %#x, %#x; want %#x, %#x", tt.avg, s, l, tt.maskS, tt.maskL)
		}
	}
}

func TestValidateChunking(t *testing.T) {
	ok := manifest.DefaultChunking()
	with := func(f func(*manifest.Chunking)) manifest.Chunking {
		c := ok
		f(&c)
		return c
	}
	tests := []struct {
		name    string
		c       manifest.Chunking
		wantErr string // substring naming the bad field; "" for valid
	}{
		{"default", ok, ""},
		{"small", small, ""},
		{"smallest", manifest.Chunking{Algorithm: manifest.ChunkingFastCDC, Min: 4 * kiB, Avg: 8 * kiB, Max: 8*kiB + 1}, ""},
		{"largest", with(func(c *manifest.Chunking) { c.Max = manifest.MaxChunkSize }), ""},
		{"algorithm", with(func(c *manifest.Chunking) { c.Algorithm = "rabin" }), "algorithm"},
		{"empty algorithm", with(func(c *manifest.Chunking) { c.Algorithm = "" }), "algorithm"},
		{"min too small", with(func(c *manifest.Chunking) { c.Min = manifest.MinChunkSize - 1 }), "min"},
		{"min zero", with(func(c *manifest.Chunking) { c.Min = 0 }), "min"},
		{"avg equals min", with(func(c *manifest.Chunking) { c.Min = c.Avg }), "avg"},
		{"avg not power of two", with(func(c *manifest.Chunking) { c.Avg = 3 << 19 }), "power of two"},
		{"max equals avg", with(func(c *manifest.Chunking) { c.Max = c.Avg }), "max"},
		{"max too large", with(func(c *manifest.Chunking) { c.Max = manifest.MaxChunkSize + 1 }), "max"},
		{"negative", manifest.Chunking{Algorithm: manifest.ChunkingFastCDC, Min: -1, Avg: -2, Max: -3}, "min"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateChunking(tt.c)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("ValidateChunking(%+v) = %v, want nil", tt.c, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("ValidateChunking(%+v) = %v, want error mentioning %q", tt.c, err, tt.wantErr)
			}
			if _, nerr := NewChunker(bytes.NewReader(nil), tt.c); (nerr == nil) != (err == nil) {
				t.Fatalf("NewChunker error %v disagrees with ValidateChunking %v", nerr, err)
			}
		})
	}
}

func TestBoundaryMatchesReference(t *testing.T) {
	for _, c := range []manifest.Chunking{small, katChunking, manifest.DefaultChunking()} {
		data := randomBytes(seedOf("reference"), 3*c.Max)
		for off := 0; off+c.Max <= len(data); off += c.Max/16 + 1 {
			// Odd and even lengths exercise the two-byte loop's tail.
			for _, d := range [][]byte{data[off:], data[off : off+c.Max], data[off : off+c.Avg+1]} {
				if got, want := Boundary(c, d), referenceBoundary(c, d); got != want {
					t.Fatalf("%+v: Boundary at offset %d, len %d = %d, reference %d", c, off, len(d), got, want)
				}
			}
		}
	}
}

func TestChunker(t *testing.T) {
	tests := []struct {
		name  string
		c     manifest.Chunking
		n     int
		zeros bool // all zero bytes instead of random ones
	}{
		{"empty", small, 0, false},
		{"one byte", small, 1, false},
		{"below min", small, small.Min - 1, false},
		{"exactly min", small, small.Min, false},
		{"exactly max", small, small.Max, false},
		{"several buffers", small, 10*small.Max + 12345, false},
		{"default params", manifest.DefaultChunking(), 10 << 20, false},
		{"zeros", small, 5*small.Max + 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := make([]byte, tt.n)
			if !tt.zeros {
				data = randomBytes(seedOf(tt.name), tt.n)
			}
			chunks := chunkAll(t, bytes.NewReader(data), tt.c)
			checkChunks(t, tt.c, data, chunks)
			// The same boundaries whatever the reads look like.
			again := chunkAll(t, iotest.HalfReader(bytes.NewReader(data)), tt.c)
			if !slices.Equal(sizesOf(chunks), sizesOf(again)) {
				t.Fatalf("chunk sizes depend on read sizes: %v vs %v", sizesOf(chunks), sizesOf(again))
			}
		})
	}
}

// checkChunks asserts that chunks concatenate to data and respect the size
// limits: every chunk in [Min, Max], the last one in [1, Max].
func checkChunks(t *testing.T, c manifest.Chunking, data []byte, chunks [][]byte) {
	t.Helper()
	if got := bytes.Join(chunks, nil); !bytes.Equal(got, data) {
		t.Fatalf("chunks concatenate to %d bytes that differ from the %d input bytes", len(got), len(data))
	}
	for i, b := range chunks {
		last := i == len(chunks)-1
		if len(b) > c.Max || len(b) == 0 || (!last && len(b) < c.Min) {
			t.Fatalf("chunk %d of %d has %d bytes, want [%d, %d]", i, len(chunks), len(b), c.Min, c.Max)
		}
	}
}

func TestChunkerReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	r := io.MultiReader(bytes.NewReader(randomBytes(seedOf("err"), 3*small.Max)), iotest.ErrReader(boom))
	k, err := NewChunker(r, small)
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		if _, err = k.Next(); err != nil {
			break
		}
	}
	if !errors.Is(err, boom) {
		t.Fatalf("Next = %v, want %v", err, boom)
	}
	if _, err := k.Next(); !errors.Is(err, boom) {
		t.Fatalf("second Next after error = %v, want %v again", err, boom)
	}
}

// TestContentDefined checks the point of content-defined chunking: a small
// edit in a large file changes only the chunks around it.
func TestContentDefined(t *testing.T) {
	edits := []struct {
		name string
		edit func(b []byte, at int) []byte
	}{
		{"insert 1 byte", func(b []byte, at int) []byte { return slices.Insert(b, at, 0x42) }},
		{"insert 100 bytes", func(b []byte, at int) []byte { return slices.Insert(b, at, make([]byte, 100)...) }},
		{"delete 10 bytes", func(b []byte, at int) []byte { return slices.Delete(b, at, at+10) }},
		{"overwrite 3 bytes", func(b []byte, at int) []byte { b[at] ^= 1; b[at+1] ^= 2; b[at+2] ^= 3; return b }},
		{"insert at start", func(b []byte, _ int) []byte { return slices.Insert(b, 0, 'x') }},
	}
	for _, tc := range []struct {
		c    manifest.Chunking
		size int
	}{
		{manifest.DefaultChunking(), 64 << 20},
		{small, 8 << 20},
	} {
		orig := randomBytes(seedOf("content-defined"), tc.size)
		before := digestSet(chunkAll(t, bytes.NewReader(orig), tc.c))
		for _, e := range edits {
			after := chunkAll(t, bytes.NewReader(e.edit(bytes.Clone(orig), tc.size/2)), tc.c)
			checkShared(t, fmt.Sprintf("avg %d KiB, %s", tc.c.Avg/kiB, e.name), before, after)
		}
	}
}

// checkShared asserts that at least 90% of the chunks in after (by count)
// are also in before, and logs the figure.
func checkShared(t *testing.T, name string, before map[manifest.Digest]bool, after [][]byte) {
	t.Helper()
	shared := 0
	for _, b := range after {
		if before[manifest.Sum(b)] {
			shared++
		}
	}
	frac := float64(shared) / float64(len(after))
	t.Logf("%s: %d of %d chunks unchanged (%.1f%%)", name, shared, len(after), 100*frac)
	if frac < 0.9 {
		t.Errorf("%s: only %.1f%% of chunks unchanged, want >= 90%%", name, 100*frac)
	}
}

func digestSet(chunks [][]byte) map[manifest.Digest]bool {
	m := make(map[manifest.Digest]bool, len(chunks))
	for _, b := range chunks {
		m[manifest.Sum(b)] = true
	}
	return m
}

func TestAverageChunkSize(t *testing.T) {
	for _, c := range []manifest.Chunking{manifest.DefaultChunking(), katChunking, small} {
		data := randomBytes(seedOf("average"), 64*c.Avg)
		n := len(chunkAll(t, bytes.NewReader(data), c))
		ratio := float64(len(data)) / float64(n) / float64(c.Avg)
		t.Logf("min %d avg %d max %d: %d chunks, mean size %.2fx avg", c.Min, c.Avg, c.Max, n, ratio)
		if ratio < 0.6 || ratio > 1.6 {
			t.Errorf("avg %d: mean chunk size is %.2fx the average, want within [0.6, 1.6]", c.Avg, ratio)
		}
	}
}

// TestKnownAnswer pins the chunk boundaries of the vectors in docs/SPEC.md
// ("Chunking", known answers), so that any change to the algorithm shows.
func TestKnownAnswer(t *testing.T) {
	random := randomBytes(katSeed, 8<<20)
	if got := manifest.Sum(random).String(); got != katInputSHA256 {
		t.Fatalf("known-answer input has SHA-256 %s, want %s: ChaCha8 stream changed?", got, katInputSHA256)
	}
	tests := []struct {
		name  string
		data  []byte
		sizes []int
	}{
		{"random", random, katSizes},
		{"zeros", make([]byte, 3<<20), []int{1 << 20, 1 << 20, 1 << 20}}, // no cut point: cut at Max
	}
	for _, tt := range tests {
		got := sizesOf(chunkAll(t, bytes.NewReader(tt.data), katChunking))
		if !slices.Equal(got, tt.sizes) {
			t.Errorf("%s: chunk sizes\n got %v\nwant %v", tt.name, got, tt.sizes)
		}
	}
}

func BenchmarkChunker(b *testing.B) {
	for _, c := range []manifest.Chunking{manifest.DefaultChunking(), katChunking} {
		data := randomBytes(seedOf("bench"), 64<<20)
		b.Run(sizeName(c.Avg), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				for d := data; len(d) > 0; {
					d = d[Boundary(c, d):]
				}
			}
		})
	}
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("avg=%dMiB", n>>20)
	}
	return fmt.Sprintf("avg=%dKiB", n>>10)
}
