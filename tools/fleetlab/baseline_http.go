//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fleetcast/fleetcast/internal/netlab"
)

// maxToolOutput bounds the output of a baseline's client kept for its error.
const maxToolOutput = 4 << 10

// curlHost is one host's curl download.
type curlHost struct {
	host    *netlab.Host
	file    string
	rssFile string // where GNU time writes curl's peak RSS
	cmd     *exec.Cmd
	stderr  *capBuffer
	done    time.Duration // since the start, when curl exited
	err     error
}

// runCurl is the plain-HTTP baseline: every agent host downloads the
// artifact from the origin with curl, all at the same moment, each curl
// started by GNU time, which reports its peak RSS; CPU is from the rusage of
// time (ip netns exec, time, and curl: a few ms more than curl alone). A host is
// done when its curl exited with status 0 and the file it wrote has the
// artifact's SHA-256. The run ends when every curl exited or ctx ended
// (unfinished hosts are then Problems); the error is for a run that could
// not be set up.
func runCurl(ctx context.Context, e *env) (runResult, error) {
	res := runResult{System: "curl", Scenario: "base"}
	if err := requireTools("curl", "time"); err != nil {
		return res, fmt.Errorf("curl baseline: %w", err)
	}
	want, err := fileSHA256(e.artifact)
	if err != nil {
		return res, fmt.Errorf("curl baseline: hash the artifact: %w", err)
	}
	hosts, err := prepareCurl(ctx, e)
	if err != nil {
		return res, err
	}
	before, err := e.origin.TxBytes()
	if err != nil {
		return res, fmt.Errorf("curl baseline: %w", err)
	}
	res.Start = time.Now()
	runCurlHosts(hosts, res.Start)
	res.Elapsed = time.Since(res.Start)
	after, err := e.origin.TxBytes()
	if err != nil {
		return res, fmt.Errorf("curl baseline: %w", err)
	}
	res.OriginEgress = after - before
	for _, c := range hosts {
		hr, problem := c.result(ctx, want, e.size)
		res.Hosts = append(res.Hosts, hr)
		if problem != "" {
			res.Problems = append(res.Problems, problem)
		}
	}
	return res, nil
}

// prepareCurl makes each host's directory under e.dir/curl and its command.
func prepareCurl(ctx context.Context, e *env) ([]*curlHost, error) {
	url := e.originURL + "/artifact"
	var hosts []*curlHost
	for _, h := range e.hosts {
		dir := filepath.Join(e.dir, "curl", h.Name())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("curl baseline: %w", err)
		}
		c := &curlHost{host: h, file: filepath.Join(dir, "artifact"), rssFile: filepath.Join(dir, "curl.maxrss"),
			stderr: &capBuffer{max: maxToolOutput}}
		for _, old := range []string{c.file, c.rssFile} {
			if err := os.Remove(old); err != nil && !os.IsNotExist(err) {
				return nil, fmt.Errorf("curl baseline: remove an earlier run's file: %w", err)
			}
		}
		// GNU time forks curl (no vfork) and writes its own peak RSS.
		// -q first: ignore any .curlrc; no proxy from the environment.
		c.cmd = h.Command(ctx, "time", "-q", "-f", "%M", "-o", c.rssFile,
			"curl", "-q", "-sS", "--fail", "--noproxy", "*", "-o", c.file, url)
		c.cmd.Env = toolEnv(dir)
		c.cmd.Stderr = c.stderr
		hosts = append(hosts, c)
	}
	return hosts, nil
}

// runCurlHosts starts every curl, as close together as possible, and waits
// for them all, noting when each exited.
func runCurlHosts(hosts []*curlHost, start time.Time) {
	var wg sync.WaitGroup
	for _, c := range hosts {
		if c.err = c.cmd.Start(); c.err != nil {
			continue
		}
		wg.Go(func() {
			c.err = c.cmd.Wait()
			c.done = time.Since(start)
		})
	}
	wg.Wait()
}

// result is the host's row and, if it did not end with the artifact, the
// problem to report.
func (c *curlHost) result(ctx context.Context, want [32]byte, size int64) (hostResult, string) {
	hr := hostResult{Host: c.host.Name(), OriginBytes: size}
	hr.CPU = cpuOf(c.cmd.ProcessState)
	hr.PeakRSS, _ = readMaxRSS(c.rssFile) // 0 if curl was killed
	switch {
	case c.err != nil && ctx.Err() != nil:
		hr.Err = fmt.Sprintf("not done when the run ended (%v)", ctx.Err())
	case c.err != nil:
		hr.Err = fmt.Sprintf("curl: %v: %s", c.err, strings.TrimSpace(c.stderr.String()))
	default:
		hr.Err = checkDownload(c.file, want)
	}
	if hr.Err != "" {
		hr.OriginBytes = -1
		return hr, c.host.Name() + ": " + hr.Err
	}
	hr.Done = c.done
	return hr, ""
}

// checkDownload says what is wrong with a downloaded file, or "".
func checkDownload(file string, want [32]byte) string {
	got, err := fileSHA256(file)
	if err != nil {
		return fmt.Sprintf("hash the download: %v", err)
	}
	if got != want {
		return fmt.Sprintf("download %s has SHA-256 %x, want %x: corrupt, not counted as done", file, got, want)
	}
	return ""
}

// cpuOf returns the user+system CPU time of an exited process and of the
// children it waited for. (Its rusage's Maxrss is no use: Go starts
// commands with vfork, so it counts this process's own peak RSS too.)
func cpuOf(ps *os.ProcessState) time.Duration {
	if ps == nil {
		return 0
	}
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok || ru == nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// readMaxRSS reads the peak RSS that GNU time -f %M wrote to path, in
// KiB, and returns it in bytes.
func readMaxRSS(path string) (int64, error) {
	b, err := readBounded(path, maxToolOutput)
	if err != nil {
		return 0, err
	}
	kib, err := strconv.ParseInt(strings.TrimSpace(lastLines(b, 1)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("peak RSS from time in %s: %w", path, err)
	}
	return kib << 10, nil
}

// toolEnv is the environment of a baseline's tool: this process's without
// proxy settings, with HOME set to home so that nothing the tool might
// write there lands outside the run's directory.
func toolEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasSuffix(strings.ToLower(k), "_proxy") || k == "HOME" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home)
}

// capBuffer keeps the first max bytes written to it and drops the rest.
type capBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (c *capBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - len(c.b); room > 0 {
		c.b = append(c.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (c *capBuffer) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.b)
}
