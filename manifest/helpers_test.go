package manifest_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/signing"
)

// Fixed times for every test: manifests are created at testCreated, expire at
// testExpires (far enough out that the real CLI, which uses the current time,
// accepts the ok vectors), and are checked at testNow.
var (
	testCreated = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)
	testExpires = time.Date(2099, time.January, 1, 0, 0, 0, 0, time.UTC)
	testNow     = time.Date(2026, time.June, 1, 0, 0, 0, 0, time.UTC)
)

// testArtifact returns n deterministic, irregular bytes (xorshift32).
func testArtifact(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// testManifest describes artifact cut at the given chunk sizes, which must
// add up to len(artifact).
func testManifest(t testing.TB, artifact []byte, sizes ...int64) *manifest.Manifest {
	t.Helper()
	m := &manifest.Manifest{
		Product:  "myapp",
		Channel:  "stable",
		Sequence: 1,
		Version:  "1.0.0",
		Created:  testCreated,
		Expires:  testExpires,
		Artifact: manifest.Artifact{Name: "myapp-linux-amd64", Size: int64(len(artifact)), SHA256: manifest.Sum(artifact)},
		Chunking: manifest.Chunking{Algorithm: manifest.ChunkingFastCDC, Min: 1 << 10, Avg: 2 << 10, Max: 4 << 10},
		Chunks:   []manifest.Chunk{},
		Install:  manifest.Install{Installer: "file", Target: "/opt/myapp/bin/myapp", Mode: "0755"},
	}
	off := int64(0)
	for _, s := range sizes {
		if off+s > int64(len(artifact)) {
			t.Fatalf("chunk sizes %v exceed the artifact's %d bytes", sizes, len(artifact))
		}
		m.Chunks = append(m.Chunks, manifest.Chunk{SHA256: manifest.Sum(artifact[off : off+s]), Size: s})
		off += s
	}
	if off != int64(len(artifact)) {
		t.Fatalf("chunk sizes %v add up to %d, artifact has %d bytes", sizes, off, len(artifact))
	}
	return m
}

// signManifest encodes m and signs it with each of signers.
func signManifest(t testing.TB, m *manifest.Manifest, signers ...*signing.PrivateKey) *signing.Envelope {
	t.Helper()
	payload, err := manifest.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return signPayload(manifest.PayloadType, payload, signers...)
}

func signPayload(payloadType string, payload []byte, signers ...*signing.PrivateKey) *signing.Envelope {
	env := signing.NewEnvelope(payloadType, payload)
	for _, k := range signers {
		env.Sign(k)
	}
	return env
}

// manifestsEqual compares manifests as their encodings would: times by
// instant, empty and nil lists alike.
func manifestsEqual(a, b *manifest.Manifest) bool {
	return a.Created.Equal(b.Created) && a.Expires.Equal(b.Expires) && reflect.DeepEqual(normalize(a), normalize(b))
}

func normalize(m *manifest.Manifest) manifest.Manifest {
	c := *m
	c.Created, c.Expires = time.Time{}, time.Time{}
	empty := func(s []string) []string {
		if len(s) == 0 {
			return nil
		}
		return s
	}
	if len(c.Chunks) == 0 {
		c.Chunks = nil
	}
	c.Install.Command = empty(c.Install.Command)
	c.Install.HealthCheck = empty(c.Install.HealthCheck)
	c.Install.RollbackCommand = empty(c.Install.RollbackCommand)
	return c
}
