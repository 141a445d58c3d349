package publisher

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"testing/synctest"

	"github.com/fleetcast/fleetcast/manifest"
)

// sequential computes what Split must return, the plain way.
func sequential(t testing.TB, data []byte, c manifest.Chunking) SplitResult {
	t.Helper()
	res := SplitResult{Size: int64(len(data)), SHA256: sha256.Sum256(data)}
	for _, b := range chunkAll(t, bytes.NewReader(data), c) {
		res.Chunks = append(res.Chunks, manifest.Chunk{SHA256: manifest.Sum(b), Size: int64(len(b))})
	}
	return res
}

// recorder is a sink that checks each chunk it is given and remembers it.
type recorder struct {
	t    testing.TB
	data []byte // the whole input, to check Offset and Data against

	mu   sync.Mutex
	seen map[int]manifest.Chunk
}

func newRecorder(t testing.TB, data []byte) *recorder {
	return &recorder{t: t, data: data, seen: make(map[int]manifest.Chunk)}
}

func (r *recorder) sink(c SplitChunk) error {
	end := c.Offset + int64(len(c.Data))
	switch {
	case end > int64(len(r.data)) || !bytes.Equal(c.Data, r.data[c.Offset:end]):
		return fmt.Errorf("chunk %d: data does not match the input at offset %d", c.Index, c.Offset)
	case c.Size != int64(len(c.Data)) || c.SHA256 != manifest.Sum(c.Data):
		return fmt.Errorf("chunk %d: size or digest does not match its data", c.Index)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.seen[c.Index]; dup {
		return fmt.Errorf("chunk %d passed to the sink twice", c.Index)
	}
	r.seen[c.Index] = c.Chunk
	return nil
}

func TestSplitMatchesSequential(t *testing.T) {
	tests := []struct {
		name string
		c    manifest.Chunking
		n    int
	}{
		{"empty", small, 0},
		{"below min", small, small.Min - 1},
		{"many small chunks", small, 8<<20 + 17},
		{"default params", manifest.DefaultChunking(), 24<<20 + 3},
	}
	for _, tt := range tests {
		data := randomBytes(seedOf(tt.name), tt.n)
		want := sequential(t, data, tt.c)
		for _, workers := range []int{0, 1, 2, 3, 8} {
			t.Run(fmt.Sprintf("%s/workers=%d", tt.name, workers), func(t *testing.T) {
				rec := newRecorder(t, data)
				got, err := Split(t.Context(), iotest.HalfReader(bytes.NewReader(data)), tt.c, workers, rec.sink)
				if err != nil {
					t.Fatal(err)
				}
				checkResult(t, got, want)
				if len(rec.seen) != len(want.Chunks) {
					t.Fatalf("sink saw %d chunks, want %d", len(rec.seen), len(want.Chunks))
				}
			})
		}
	}
}

func checkResult(t *testing.T, got, want SplitResult) {
	t.Helper()
	if got.Size != want.Size || got.SHA256 != want.SHA256 {
		t.Fatalf("Split size, digest = %d, %v; want %d, %v", got.Size, got.SHA256, want.Size, want.SHA256)
	}
	if !slices.Equal(got.Chunks, want.Chunks) {
		t.Fatalf("Split returned %d chunks that differ from the %d sequential ones", len(got.Chunks), len(want.Chunks))
	}
}

func TestSplitFile(t *testing.T) {
	data := randomBytes(seedOf("file"), 10<<20)
	path := filepath.Join(t.TempDir(), "release.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := Split(t.Context(), f, small, 2, newRecorder(t, data).sink)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, got, sequential(t, data, small))
}

// TestSplitErrors runs each failure inside a synctest bubble: synctest.Test
// fails if any goroutine Split started is still alive or blocked at the end.
func TestSplitErrors(t *testing.T) {
	boom := errors.New("boom")
	data := randomBytes(seedOf("errors"), 4<<20)
	tests := []struct {
		name    string
		r       func() io.Reader
		ctx     func(context.Context, context.CancelFunc) context.Context
		sink    func(cancel context.CancelFunc) func(SplitChunk) error
		wantErr error
	}{
		{
			name:    "sink error",
			sink:    func(context.CancelFunc) func(SplitChunk) error { return failAt(5, boom) },
			wantErr: boom,
		},
		{
			name:    "sink error on first chunk",
			sink:    func(context.CancelFunc) func(SplitChunk) error { return failAt(0, boom) },
			wantErr: boom,
		},
		{
			name: "cancel during split",
			sink: func(cancel context.CancelFunc) func(SplitChunk) error {
				return func(c SplitChunk) error {
					if c.Index == 3 {
						cancel()
					}
					return nil
				}
			},
			wantErr: context.Canceled,
		},
		{
			name: "cancel after the last chunk was read",
			r:    func() io.Reader { return bytes.NewReader(data[:small.Min]) },
			sink: func(cancel context.CancelFunc) func(SplitChunk) error {
				return func(SplitChunk) error { cancel(); return nil }
			},
			wantErr: context.Canceled,
		},
		{
			name:    "canceled before start",
			ctx:     func(ctx context.Context, cancel context.CancelFunc) context.Context { cancel(); return ctx },
			wantErr: context.Canceled,
		},
		{
			name:    "read error",
			r:       func() io.Reader { return io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom)) },
			wantErr: boom,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				r, sink := io.Reader(bytes.NewReader(data)), func(SplitChunk) error { return nil }
				if tt.r != nil {
					r = tt.r()
				}
				if tt.ctx != nil {
					ctx = tt.ctx(ctx, cancel)
				}
				if tt.sink != nil {
					sink = tt.sink(cancel)
				}
				_, err := Split(ctx, r, small, 2, sink)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Split = %v, want %v", err, tt.wantErr)
				}
			})
		})
	}
}

// failAt returns a sink that fails with err on chunk index.
func failAt(index int, err error) func(SplitChunk) error {
	return func(c SplitChunk) error {
		if c.Index == index {
			return err
		}
		return nil
	}
}

func TestSplitTooManyChunks(t *testing.T) {
	defer func(n int) { maxChunks = n }(maxChunks)
	maxChunks = 10
	data := randomBytes(seedOf("too many"), 11*small.Max)
	if n := len(sequential(t, data, small).Chunks); n <= maxChunks {
		t.Fatalf("test input has only %d chunks, want more than %d", n, maxChunks)
	}
	_, err := Split(t.Context(), bytes.NewReader(data), small, 2, func(SplitChunk) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "more than 10 chunks") {
		t.Fatalf("Split = %v, want an error about more than 10 chunks", err)
	}
	if _, err := Split(t.Context(), bytes.NewReader(data[:5*small.Min]), small, 2, func(SplitChunk) error { return nil }); err != nil {
		t.Fatalf("Split of a small input: %v", err)
	}
}

func TestSplitInvalidChunking(t *testing.T) {
	bad := small
	bad.Avg = 10000
	_, err := Split(t.Context(), bytes.NewReader(nil), bad, 1, func(SplitChunk) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "avg") {
		t.Fatalf("Split with avg 10000 = %v, want an error naming avg", err)
	}
}

// TestSplitAllocations checks that buffers are recycled, not allocated per
// chunk: a few hundred chunks may cost only a bounded number of allocations.
func TestSplitAllocations(t *testing.T) {
	data := randomBytes(seedOf("allocs"), 8<<20)
	chunks := len(sequential(t, data, small).Chunks)
	allocs := testing.AllocsPerRun(2, func() {
		if _, err := Split(t.Context(), bytes.NewReader(data), small, 2, func(SplitChunk) error { return nil }); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%d chunks, %.0f allocations per Split", chunks, allocs)
	if allocs > float64(chunks)/4 {
		t.Fatalf("Split made %.0f allocations for %d chunks; buffers are not being reused", allocs, chunks)
	}
}

// benchData is the 256 MiB input shared by the Split benchmarks.
var benchData = sync.OnceValue(func() []byte { return randomBytes(seedOf("bench split"), 256<<20) })

func BenchmarkSplit(b *testing.B) {
	data := benchData()
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				_, err := Split(b.Context(), bytes.NewReader(data), manifest.DefaultChunking(), workers, func(SplitChunk) error { return nil })
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSplitBaseline is one single-threaded SHA-256 pass over the same
// data: the floor that BenchmarkSplit is compared against.
func BenchmarkSplitBaseline(b *testing.B) {
	data := benchData()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		h := manifest.NewHash()
		h.Write(data)
		h.Sum(nil)
	}
}
