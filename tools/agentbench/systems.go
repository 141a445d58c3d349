//go:build unix

package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/fleetcast/fleetcast/tools/internal/benchrun"
)

// bench holds the prepared origin, keys and agent configuration.
type bench struct {
	cfg     config
	work    string
	fleet   string
	url     string // origin URL, ends in "/"
	samples map[string][]sample
}

func (b *bench) path(name string) string { return filepath.Join(b.work, name) }

// fleetcast runs one CLI step of the preparation.
func (b *bench) fleetcast(args ...string) error {
	cmd := exec.Command(b.fleet, args...)
	cmd.Env = append(os.Environ(), "FLEETCAST_PASSPHRASE=agentbench")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("fleetcast %v: %v\n%s", args, err, out)
	}
	return nil
}

// prepare builds fleetcast, makes a key and a root, writes the random
// artifact straight into the origin as artifact.bin (the file curl fetches)
// and publishes it as release 1 of app/stable.
func (b *bench) prepare() error {
	b.samples = map[string][]sample{}
	var err error
	if b.fleet, err = benchrun.Fleetcast(context.Background(), b.cfg.fleet, b.work); err != nil {
		return err
	}
	origin := b.path("origin")
	if err := os.MkdirAll(origin, 0o755); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"keygen", "-o", b.path("k")},
		{"root", "init", "-o", b.path("root.json"), "--threshold", "1", "--key", b.path("k.pub")},
		{"root", "sign", "--yes", "--key", b.path("k.key"), b.path("root.json")},
		{"root", "publish", "--origin", origin, b.path("root.json")},
	} {
		if err := b.fleetcast(args...); err != nil {
			return err
		}
	}
	start := time.Now()
	// A seeded ChaCha8 stream: fast, and the same file for the same size
	// every time.
	random := rand.NewChaCha8([32]byte{'a', 'g', 'e', 'n', 't'})
	if err := benchrun.WriteArtifact(b.artifact(), b.cfg.size, random); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s of random bytes in %.1fs\n", benchrun.MiB(b.cfg.size), time.Since(start).Seconds())
	if err := b.publish("1", b.artifact()); err != nil {
		return err
	}
	return os.MkdirAll(b.path("target"), 0o755)
}

func (b *bench) artifact() string { return filepath.Join(b.path("origin"), "artifact.bin") }

func (b *bench) publish(version, file string) error {
	start := time.Now()
	err := b.fleetcast("publish", "--origin", b.path("origin"), "--root", b.path("root.json"), "--key", b.path("k.key"),
		"--product", "app", "--channel", "stable", "--version", version, "--name", "app",
		"--installer", "file", "--target", b.path("target/app"), file)
	if err == nil {
		fmt.Fprintf(os.Stderr, "published version %s in %.1fs\n", version, time.Since(start).Seconds())
	}
	return err
}

func (b *bench) agentConfig() string {
	q := strconv.Quote // TOML basic strings take Go's escapes for these paths
	return fmt.Sprintf(`data_dir = %s
origin = %s
root = %s
listen = ""
origin_connections = %d
allowed_targets = [%s]

[[subscription]]
product = "app"
channel = "stable"
`, q(b.path("data")), q(b.url), q(b.path("root.json")), b.cfg.conns, q(b.path("target")+"/"))
}

// warm reads every file of the origin once, so that nginx serves all
// systems from the page cache: the origin is local, its disk is not what
// is measured.
func (b *bench) warm() error {
	buf := make([]byte, 4<<20)
	return filepath.WalkDir(b.path("origin"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.CopyBuffer(io.Discard, f, buf)
		return err
	})
}

func checkSize(path string, want int64) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() != want {
		return fmt.Errorf("%s: %d bytes, want %d", path, fi.Size(), want)
	}
	return nil
}

// runCurl fetches artifact.bin with curl -o, then fsyncs the file with
// coreutils' sync FILE: curl alone, and curl plus fsync (the agent's
// installer fsyncs what it installs).
func (b *bench) runCurl() (map[string]sample, error) {
	out := b.path("curl.out")
	defer os.Remove(out)
	start := time.Now()
	m, _, err := benchrun.Timed("curl", "-s", "-S", "-f", "-o", out, b.url+"artifact.bin")
	if err != nil {
		return nil, err
	}
	s, _, err := benchrun.Timed("sync", out)
	if err != nil {
		return nil, err
	}
	ms := m
	ms.Wall = time.Since(start)
	ms.User, ms.Sys = m.User+s.User, m.Sys+s.Sys
	ms.MaxRSS = max(m.MaxRSS, s.MaxRSS)
	if err := checkSize(out, b.cfg.size); err != nil {
		return nil, err
	}
	return map[string]sample{nameCurl: {Sample: m}, nameCurlSync: {Sample: ms}}, nil
}

var verifiedLine = regexp.MustCompile(`msg="artifact verified".* origin_bytes=(\d+) origin_chunks=(\d+) .*seconds=([0-9.eE+-]+)`)

// agentOnce runs one update cycle and parses its "artifact verified" line.
func (b *bench) agentOnce() (m sample, originBytes, originChunks int64, err error) {
	var log []byte
	m.Sample, log, err = benchrun.Timed(b.fleet, "agent", "--config", b.path("agent.toml"), "--once")
	if err != nil {
		return m, 0, 0, err
	}
	sub := verifiedLine.FindSubmatch(log)
	if sub == nil {
		return m, 0, 0, fmt.Errorf("no \"artifact verified\" line with origin_bytes and seconds in the agent's log:\n%s", log)
	}
	originBytes, _ = strconv.ParseInt(string(sub[1]), 10, 64)
	originChunks, _ = strconv.ParseInt(string(sub[2]), 10, 64)
	secs, _ := strconv.ParseFloat(string(sub[3]), 64)
	m.verified = time.Duration(secs * float64(time.Second))
	return m, originBytes, originChunks, checkSize(b.path("target/app"), b.cfg.size)
}

// reset removes the agent's data directory and the installed target.
func (b *bench) reset() {
	os.RemoveAll(b.path("data"))
	os.RemoveAll(b.path("target"))
	os.MkdirAll(b.path("target"), 0o755)
}

// runAgent runs a fresh agent (empty data directory, no target) once.
func (b *bench) runAgent() (map[string]sample, error) {
	b.reset()
	defer b.reset()
	m, ob, _, err := b.agentOnce()
	if err != nil {
		return nil, err
	}
	if ob != b.cfg.size {
		fmt.Fprintf(os.Stderr, "warning: fresh agent fetched origin_bytes=%d, artifact is %d\n", ob, b.cfg.size)
	}
	return map[string]sample{nameAgent: m}, nil
}

type delta struct {
	changed      int64 // bytes overwritten
	places       int
	originBytes  int64
	originChunks int64
	m            sample
}

// runDelta installs release 1 with a fresh agent, publishes release 2 with
// 1% of the bytes changed in a few places, and times the update to it.
func (b *bench) runDelta() (delta, error) {
	d := delta{places: 8}
	b.reset()
	defer b.reset()
	if _, _, _, err := b.agentOnce(); err != nil {
		return d, fmt.Errorf("installing release 1: %w", err)
	}
	v2 := b.path("artifact2.bin")
	defer os.Remove(v2)
	if err := copyFile(v2, b.artifact()); err != nil {
		return d, err
	}
	f, err := os.OpenFile(v2, os.O_RDWR, 0)
	if err != nil {
		return d, err
	}
	r := rand.NewChaCha8([32]byte{'d', 'e', 'l', 't', 'a'})
	each := b.cfg.size / 100 / int64(d.places)
	patch := make([]byte, each)
	stride := b.cfg.size / int64(d.places)
	for i := range int64(d.places) {
		r.Read(patch)
		off := i*stride + int64(rand.New(r).Uint64N(uint64(stride-each)))
		if _, err := f.WriteAt(patch, off); err != nil {
			f.Close()
			return d, err
		}
		d.changed += each
	}
	if err := f.Close(); err != nil {
		return d, err
	}
	if err := b.publish("2", v2); err != nil {
		return d, err
	}
	if err := b.warm(); err != nil {
		return d, err
	}
	benchrun.Settle()
	d.m, d.originBytes, d.originChunks, err = b.agentOnce()
	if err != nil {
		return d, fmt.Errorf("updating to release 2: %w", err)
	}
	fmt.Fprintf(os.Stderr, "delta: origin_bytes=%d origin_chunks=%d verified %.3fs installed %.3fs rss %s\n",
		d.originBytes, d.originChunks, d.m.verified.Seconds(), d.m.Wall.Seconds(), benchrun.MiB(d.m.MaxRSS))
	return d, nil
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
