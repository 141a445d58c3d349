package swarm

import (
	"bytes"
	"testing"

	"github.com/fleetcast/fleetcast/internal/releasetest"
)

// BenchmarkAssemble assembles a release of 16 MiB in chunks of about
// 16 KiB (about 1000 chunks) without peers: all from an in-memory origin
// (origin), and as a delta of 1% from a release the store holds beside
// three releases of other products (delta). It measures what the assembly
// costs for each chunk (verify, write, journal, holdings, tallies, the
// whole-file hash) and for finding the copies in the store, with the
// final fsync.
func BenchmarkAssemble(b *testing.B) {
	const size = 16 << 20
	for _, delta := range []bool{false, true} {
		name := "origin"
		if delta {
			name = "delta"
		}
		b.Run(name, func(b *testing.B) {
			s, src := newTestStore(b), releasetest.NewSource()
			data := releasetest.Data(31, size)
			if delta {
				for i, product := range []string{"app", "other1", "other2", "other3"} {
					m := releasetest.Release(b, 1, releasetest.Data(uint64(40+i), size), src)
					if product == "app" {
						m = releasetest.Release(b, 1, data, src)
					}
					m.Product = product
					if _, err := assembleRelease(b, s, m, src); err != nil {
						b.Fatal(err)
					}
				}
				data = bytes.Clone(data)
				copy(data[size/2:], releasetest.Data(32, size/100))
			}
			m := releasetest.Release(b, 2, data, src)
			b.SetBytes(size)
			for b.Loop() {
				if _, err := assembleRelease(b, s, m, src); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := s.Remove(m.ChannelID(), 1); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}
