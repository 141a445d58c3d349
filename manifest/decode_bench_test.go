package manifest

import (
	"encoding/json"
	"testing"
	"time"
)

// BenchmarkDecodeLarge decodes a manifest of MaxChunks chunks (128 GiB at the
// default chunk size), the worst case a verifier accepts, with Decode
// (strict: repeated and inexact keys, null, UTF-8, then validation) beside
// plain encoding/json on the same payload as the baseline.
func BenchmarkDecodeLarge(b *testing.B) {
	m := &Manifest{
		Product: "app", Channel: "stable", Sequence: 1, Version: "1",
		Created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Expires: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC),
		Artifact: Artifact{Name: "app.bin", Size: MaxChunks << 20},
		Chunking: DefaultChunking(),
		Install:  Install{Installer: "file", Target: "/opt/app"},
	}
	for i := range MaxChunks {
		m.Chunks = append(m.Chunks, Chunk{SHA256: Sum([]byte{byte(i), byte(i >> 8), byte(i >> 16)}), Size: 1 << 20})
	}
	payload, err := Encode(m)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		decode func() error
	}{
		{"strict", func() error { _, err := Decode(payload); return err }},
		{"encoding-json", func() error { var out Manifest; return json.Unmarshal(payload, &out) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.decode(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
