package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/tools/internal/benchrun"
)

// bench holds the prepared artifact and key.
type bench struct {
	cfg     config
	work    string
	fleet   string
	samples map[string][]benchrun.Sample
}

func (b *bench) prepare() error {
	b.samples = map[string][]benchrun.Sample{}
	var err error
	if b.fleet, err = benchrun.Fleetcast(context.Background(), b.cfg.fleet, b.work); err != nil {
		return err
	}
	if err := benchrun.WriteArtifact(b.path("artifact.bin"), b.cfg.size, rand.Reader); err != nil {
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

// timed runs a command and reports its wall time and peak RSS; its output
// only goes into the error when it fails.
func timed(name string, args ...string) (benchrun.Sample, error) {
	m, _, err := benchrun.Timed(name, args...)
	return m, err
}

func (b *bench) runDD() (benchrun.Sample, error) {
	defer os.Remove(b.path("copy.bin"))
	return timed("dd", "if="+b.path("artifact.bin"), "of="+b.path("copy.bin"), "bs=4M", "conv=fsync", "status=none")
}

// runHash hashes the artifact once, on one goroutine, with the hash that
// fleetcast uses (manifest.NewHash).
func (b *bench) runHash() (benchrun.Sample, error) {
	start := time.Now()
	f, err := os.Open(b.path("artifact.bin"))
	if err != nil {
		return benchrun.Sample{}, err
	}
	defer f.Close()
	h := manifest.NewHash()
	if _, err := io.CopyBuffer(h, f, make([]byte, 4<<20)); err != nil {
		return benchrun.Sample{}, err
	}
	h.Sum(nil)
	return benchrun.Sample{Wall: time.Since(start)}, nil
}

func (b *bench) runPublish() (benchrun.Sample, error) {
	origin := b.path("origin")
	os.RemoveAll(origin)
	defer os.RemoveAll(origin)
	version := fmt.Sprintf("v%d", time.Now().UnixNano())
	return timed(b.fleet, "publish", "--origin", origin, "--root", b.path("root.json"), "--key", b.path("bench.key"),
		"--product", "bench", "--channel", "stable", "--version", version, "--target", "/opt/bench/artifact", b.path("artifact.bin"))
}

func (b *bench) runCasync() (benchrun.Sample, error) {
	store := b.path("store.castr")
	os.RemoveAll(store)
	defer os.RemoveAll(store)
	defer os.Remove(b.path("index.caibx"))
	return timed("casync", "make", "--store="+store, "--chunk-size=262144:1048576:4194304", b.path("index.caibx"), b.path("artifact.bin"))
}
