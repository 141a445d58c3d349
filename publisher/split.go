package publisher

import (
	"context"
	"fmt"
	"hash"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/fleetcast/fleetcast/manifest"
)

// SplitChunk is a chunk with its place in the artifact, as passed to the sink
// of Split. Data is valid only during the callback.
type SplitChunk struct {
	Index  int
	Offset int64
	Data   []byte
	manifest.Chunk
}

// SplitResult describes a split artifact: its chunks in order, its size and
// the SHA-256 of the whole stream.
type SplitResult struct {
	Chunks []manifest.Chunk
	Size   int64
	SHA256 manifest.Digest
}

// spareBuffers is how many chunk buffers Split keeps beyond one per worker:
// enough for the reader and the whole-stream hasher to run ahead.
const spareBuffers = 4

// minReadBuffer is the smallest buffer Split reads into: large reads keep
// syscalls few, and the Chunker's compaction copies little of each refill.
const minReadBuffer = 16 << 20

// Buffers outlive a Split call in these pools, so that publishing release
// after release does not allocate (and the runtime zero) tens of MiB each time.
var (
	readBuffers sync.Pool // *[]byte
	jobs        sync.Pool // *job
)

// getReadBuffer returns a pooled buffer of max(minReadBuffer, 4*c.Max) bytes.
func getReadBuffer(c manifest.Chunking) *[]byte {
	size := max(minReadBuffer, 4*c.Max)
	if b, ok := readBuffers.Get().(*[]byte); ok && len(*b) >= size {
		return b
	}
	b := make([]byte, size)
	return &b
}

// newJob returns a pooled job with room for size bytes.
func newJob(size int) *job {
	if j, ok := jobs.Get().(*job); ok && cap(j.data) >= size {
		return j
	}
	return &job{data: make([]byte, 0, size)}
}

// maxChunks is manifest.MaxChunks, a variable only so that tests can reach
// the limit without gigabytes of input.
var maxChunks = manifest.MaxChunks

// Split reads r to the end, cuts it into chunks with parameters c, and hashes
// every chunk on workers goroutines (0 means runtime.GOMAXPROCS(0)) while one
// more goroutine hashes the whole stream in order. sink is called for every
// chunk once its digest is known, from the worker goroutines: concurrently and
// in any order. It may write the chunk somewhere but must not keep Data.
//
// At most workers+4 buffers of c.Max bytes are in use at a time, plus a read
// buffer of max(16 MiB, 4*c.Max); they are recycled within the call and kept
// in a sync.Pool between calls. Split stops at the first error from r, sink
// or ctx, waits for its goroutines, and returns that error; a Read that
// blocks is not interrupted by ctx. An input of more than manifest.MaxChunks
// chunks is refused. An empty input gives an empty, non-nil chunk list.
func Split(ctx context.Context, r io.Reader, c manifest.Chunking, workers int, sink func(SplitChunk) error) (SplitResult, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if err := ValidateChunking(c); err != nil {
		return SplitResult{}, err
	}
	buf := getReadBuffer(c)
	defer readBuffers.Put(buf)
	s := newSplitter(ctx, c, workers, sink)
	s.start(workers)
	size := s.read(newChunker(r, c, *buf))
	s.wait()
	if s.err != nil {
		return SplitResult{}, s.err
	}
	if s.chunks == nil {
		s.chunks = []manifest.Chunk{}
	}
	return SplitResult{Chunks: s.chunks, Size: size, SHA256: s.sum}, nil
}

// job is one chunk on its way through the pipeline. Jobs and their buffers
// are recycled through splitter.free; refs counts the two consumers (the
// whole-stream hasher and a worker) that still need data.
type job struct {
	index  int
	offset int64
	data   []byte
	refs   atomic.Int32
}

// splitter holds the state shared by Split's goroutines.
type splitter struct {
	ctx    context.Context
	cancel context.CancelFunc
	c      manifest.Chunking
	sink   func(SplitChunk) error
	free   chan *job // recycled jobs; capacity is the buffer budget
	made   int       // jobs allocated so far; only the reader touches it
	whole  chan *job // to the whole-stream hasher, in order
	work   chan *job // to the chunk hashers
	wg     sync.WaitGroup
	sum    manifest.Digest // whole-stream digest, set by the hasher

	mu     sync.Mutex
	err    error            // first error
	chunks []manifest.Chunk // chunk list, filled in by index
}

func newSplitter(ctx context.Context, c manifest.Chunking, workers int, sink func(SplitChunk) error) *splitter {
	ctx, cancel := context.WithCancel(ctx)
	n := workers + spareBuffers
	return &splitter{
		ctx: ctx, cancel: cancel, c: c, sink: sink,
		free:  make(chan *job, n),
		whole: make(chan *job, n),
		work:  make(chan *job, n),
	}
}

// start launches the whole-stream hasher and the chunk hashers.
func (s *splitter) start(workers int) {
	s.wg.Go(s.hashWhole)
	for range workers {
		s.wg.Go(s.hashChunks)
	}
}

// wait waits for every goroutine, releases the context and hands the jobs,
// all of which are back in s.free by then, to the package pool. A context
// canceled from outside is an error even if the reader had finished, since
// the hashers may have skipped chunks after it.
func (s *splitter) wait() {
	s.wg.Wait()
	if s.err == nil {
		s.err = s.ctx.Err()
	}
	s.cancel()
	for len(s.free) > 0 {
		jobs.Put(<-s.free)
	}
}

// fail records err if it is the first error and stops the pipeline.
func (s *splitter) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.cancel()
}

// read runs the chunker on the calling goroutine and hands every chunk, copied
// into a recycled buffer, to both the whole-stream hasher and the workers. It
// closes both channels when done and returns the number of bytes read.
func (s *splitter) read(k *Chunker) int64 {
	defer close(s.work)
	defer close(s.whole)
	var off int64
	for index := 0; ; index++ {
		data, err := k.Next()
		if err == io.EOF {
			return off
		}
		if err != nil {
			err = fmt.Errorf("split: read: %w", err)
		} else {
			err = s.dispatch(index, off, data)
		}
		if err != nil {
			s.fail(err)
			return off
		}
		off += int64(len(data))
	}
}

// dispatch copies one chunk into a job and sends it down both channels. The
// channels hold as many jobs as exist, so the sends never block.
func (s *splitter) dispatch(index int, off int64, data []byte) error {
	if err := s.ctx.Err(); err != nil {
		return err
	}
	if index >= maxChunks {
		return fmt.Errorf("split: artifact has more than %d chunks, the most a manifest may list; use a larger average chunk size", maxChunks)
	}
	j, err := s.get()
	if err != nil {
		return err
	}
	j.index, j.offset, j.data = index, off, append(j.data[:0], data...)
	j.refs.Store(2)
	s.whole <- j
	s.work <- j
	return nil
}

// get returns a free job, allocating one while under the budget and waiting
// for one otherwise.
func (s *splitter) get() (*job, error) {
	select {
	case j := <-s.free:
		return j, nil
	default:
	}
	if s.made < cap(s.free) {
		s.made++
		return newJob(s.c.Max), nil
	}
	select {
	case j := <-s.free:
		return j, nil
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
}

// put drops one reference to j and recycles it when it was the last.
func (s *splitter) put(j *job) {
	if j.refs.Add(-1) == 0 {
		s.free <- j
	}
}

// hashWhole hashes the chunks in order into the whole-stream digest. After
// an error it only drains the channel.
func (s *splitter) hashWhole() {
	h := manifest.NewHash()
	for j := range s.whole {
		if s.ctx.Err() == nil {
			h.Write(j.data)
		}
		s.put(j)
	}
	s.sum = digestOf(h)
}

func digestOf(h hash.Hash) manifest.Digest {
	var d manifest.Digest
	h.Sum(d[:0])
	return d
}

// hashChunks hashes chunks, records them and passes them to the sink. After
// an error it only drains the channel.
func (s *splitter) hashChunks() {
	for j := range s.work {
		if s.ctx.Err() == nil {
			s.emit(j)
		}
		s.put(j)
	}
}

// emit hashes one chunk, records it in the chunk list and calls the sink.
func (s *splitter) emit(j *job) {
	ch := manifest.Chunk{SHA256: manifest.Sum(j.data), Size: int64(len(j.data))}
	s.record(j.index, ch)
	err := s.sink(SplitChunk{Index: j.index, Offset: j.offset, Data: j.data, Chunk: ch})
	if err != nil {
		s.fail(fmt.Errorf("split: chunk %d at offset %d: %w", j.index, j.offset, err))
	}
}

// record stores ch at index in the chunk list, growing it as needed.
func (s *splitter) record(index int, ch manifest.Chunk) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if index >= len(s.chunks) {
		s.chunks = slices.Grow(s.chunks, index+1-len(s.chunks))[:index+1]
	}
	s.chunks[index] = ch
}
