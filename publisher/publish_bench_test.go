package publisher

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/signing"
)

// BenchmarkPublish publishes a 256 MiB random file into a fresh origin on the
// test's temporary filesystem, beside BenchmarkPublishBaseline/sha256 (one
// single-threaded SHA-256 pass over the same file) and
// BenchmarkPublishBaseline/copy-fsync (a plain copy with fsync), so the
// result reads as a ratio. tools/publishbench does the same at 1 GiB with dd.
func BenchmarkPublish(b *testing.B) {
	path, size := benchArtifact(b)
	k, _ := signing.NewKeyFromSeed(make([]byte, 32))
	root := &signing.Root{Version: 1, Threshold: 1, Keys: []signing.PublicKey{k.Public}, Expires: t0.AddDate(10, 0, 0)}
	env, _ := root.Envelope()
	env.Sign(k)
	b.SetBytes(size)
	i := 0
	for b.Loop() {
		b.StopTimer()
		o := Origin{Dir: filepath.Join(b.TempDir(), "origin")}
		if _, _, err := o.AddRoot(context.Background(), env.Marshal()); err != nil {
			b.Fatal(err)
		}
		opts := Options{Product: "bench", Channel: "stable", Version: fmt.Sprint(i), Keys: []*signing.PrivateKey{k}, Now: t0,
			Install: manifest.Install{Installer: "file", Target: "/opt/bench"}}
		i++
		b.StartTimer()
		if _, err := Publish(context.Background(), o, path, opts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPublishBaseline(b *testing.B) {
	path, size := benchArtifact(b)
	b.Run("sha256", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			f, _ := os.Open(path)
			h := manifest.NewHash()
			io.CopyBuffer(h, f, make([]byte, 4<<20))
			f.Close()
		}
	})
	b.Run("copy-fsync", func(b *testing.B) {
		b.SetBytes(size)
		dst := filepath.Join(b.TempDir(), "copy")
		for b.Loop() {
			in, _ := os.Open(path)
			out, _ := os.Create(dst)
			io.CopyBuffer(out, in, make([]byte, 4<<20))
			out.Sync()
			out.Close()
			in.Close()
			os.Remove(dst)
		}
	})
}

func benchArtifact(b *testing.B) (string, int64) {
	b.Helper()
	const size = 256 << 20
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{42}).Read(data)
	path := filepath.Join(b.TempDir(), "artifact.bin")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	// Durable before timing starts, so no run pays for writing it back.
	if _, err := f.Write(data); err != nil || f.Sync() != nil {
		b.Fatal("write artifact:", err)
	}
	return path, size
}
