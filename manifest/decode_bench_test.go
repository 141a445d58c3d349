package manifest

import (
	"encoding/json"
	"testing"
	"time"
)

// BenchmarkDecodeLarge decodes a manifest of MaxChunks chunks (128 GiB at the
// default chunk size): the worst case the agent accepts.
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
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeLargeStdlibOnly(b *testing.B) {
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
	payload, _ := Encode(m)
	b.ReportAllocs()
	for b.Loop() {
		var out Manifest
		if err := json.Unmarshal(payload, &out); err != nil {
			b.Fatal(err)
		}
	}
}
