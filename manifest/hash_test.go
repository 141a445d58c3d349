package manifest

import (
	stdsha256 "crypto/sha256"
	"hash"
	"testing"

	simd "github.com/minio/sha256-simd"
)

func TestDigestRoundTrip(t *testing.T) {
	d := Sum([]byte("fleetcast"))
	text, _ := d.MarshalText()
	var back Digest
	if err := back.UnmarshalText(text); err != nil {
		t.Fatal(err)
	}
	if back != d {
		t.Fatalf("round trip: got %s, want %s", back, d)
	}
	for _, bad := range []string{"", "00", d.String() + "0", "G" + d.String()[1:], "A" + d.String()[1:]} {
		if _, err := ParseDigest(bad); err == nil {
			t.Errorf("ParseDigest(%q) accepted", bad)
		}
	}
}

func TestNewHashIsSHA256(t *testing.T) {
	data := []byte("the quick brown fox")
	h := NewHash()
	h.Write(data)
	if got, want := h.Sum(nil), stdsha256.Sum256(data); string(got) != string(want[:]) {
		t.Fatalf("NewHash is not SHA-256")
	}
}

// BenchmarkHash compares the two SHA-256 implementations on 1 MiB blocks (the
// average chunk). NewHash uses whichever docs/BENCHMARKS.md shows to be faster.
func BenchmarkHash(b *testing.B) {
	block := make([]byte, 1<<20)
	for i := range block {
		block[i] = byte(i * 7)
	}
	for _, impl := range []struct {
		name string
		new  func() hash.Hash
	}{
		{"crypto-sha256", stdsha256.New},
		{"sha256-simd", simd.New},
	} {
		b.Run(impl.name, func(b *testing.B) {
			b.SetBytes(int64(len(block)))
			h := impl.new()
			for b.Loop() {
				h.Reset()
				h.Write(block)
				h.Sum(nil)
			}
		})
	}
}
