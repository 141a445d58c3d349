package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/tools/internal/product"
)

// bench holds the prepared artifact and key.
type bench struct {
	cfg     config
	work    string
	fleet   string
	samples map[string][]measurement
}

func (b *bench) prepare() error {
	b.samples = map[string][]measurement{}
	b.fleet = b.cfg.fleet
	if b.fleet == "" {
		b.fleet = b.path("fleetcast")
		if err := product.Build(context.Background(), "cmd/fleetcast", b.fleet); err != nil {
			return fmt.Errorf("%w (run from the repository, or pass -fleetcast)", err)
		}
	}
	if err := writeRandom(b.path("artifact.bin"), b.cfg.size); err != nil {
		return err
	}
	steps := [][]string{
		{"keygen", "-o", b.path("bench"), "--unencrypted"},
		{"root", "init", "-o", b.path("root.json"), "--key", b.path("bench.pub")},
		{"root", "sign", "--yes", "--key", b.path("bench.key"), b.path("root.json")},
	}
	for _, args := range steps {
		if out, err := exec.Command(b.fleet, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("fleetcast %v: %v\n%s", args, err, out)
		}
	}
	return nil
}

func writeRandom(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 4<<20)
	if _, err := io.CopyN(w, rand.Reader, size); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// timed runs a command and reports its wall time and peak RSS.
func timed(name string, args ...string) (measurement, error) {
	cmd := exec.Command(name, args...)
	var out limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	m := measurement{wall: time.Since(start)}
	if err != nil {
		return m, fmt.Errorf("%s %v: %v\n%s", name, args, err, out.b)
	}
	m.maxRSS = maxRSS(cmd.ProcessState)
	return m, nil
}

func (b *bench) runDD() (measurement, error) {
	defer os.Remove(b.path("copy.bin"))
	return timed("dd", "if="+b.path("artifact.bin"), "of="+b.path("copy.bin"), "bs=4M", "conv=fsync", "status=none")
}

// runHash hashes the artifact once, on one goroutine, with the hash that
// fleetcast uses (manifest.NewHash).
func (b *bench) runHash() (measurement, error) {
	start := time.Now()
	f, err := os.Open(b.path("artifact.bin"))
	if err != nil {
		return measurement{}, err
	}
	defer f.Close()
	h := manifest.NewHash()
	if _, err := io.CopyBuffer(h, f, make([]byte, 4<<20)); err != nil {
		return measurement{}, err
	}
	h.Sum(nil)
	return measurement{wall: time.Since(start)}, nil
}

func (b *bench) runPublish() (measurement, error) {
	origin := b.path("origin")
	os.RemoveAll(origin)
	defer os.RemoveAll(origin)
	version := fmt.Sprintf("v%d", time.Now().UnixNano())
	return timed(b.fleet, "publish", "--origin", origin, "--root", b.path("root.json"), "--key", b.path("bench.key"),
		"--product", "bench", "--channel", "stable", "--version", version, "--target", "/opt/bench/artifact", b.path("artifact.bin"))
}

func (b *bench) runCasync() (measurement, error) {
	store := b.path("store.castr")
	os.RemoveAll(store)
	defer os.RemoveAll(store)
	defer os.Remove(b.path("index.caibx"))
	return timed("casync", "make", "--store="+store, "--chunk-size=262144:1048576:4194304", b.path("index.caibx"), b.path("artifact.bin"))
}

// limitedBuffer keeps the first 64 KiB of a command's output for error messages.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 64<<10 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
