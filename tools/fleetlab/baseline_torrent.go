//go:build linux

package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/fleetcast/fleetcast/internal/netlab"
)

const (
	// trackerPort is where opentracker listens (HTTP) on the origin host.
	trackerPort = "6969"
	// btListenPort is every aria2's BitTorrent port, the same on each host.
	btListenPort = "6881"
	// torrentPieceLog is the piece size as a power of two: 1 MiB.
	torrentPieceLog = "20"
	// announceInterval is aria2's seconds between announces, overriding
	// the tracker's interval so that peers learn of each other at once.
	announceInterval = "1"
	// trackerReadyWait bounds the wait for the tracker to listen and for
	// the seeder to be registered with it.
	trackerReadyWait = 30 * time.Second
	// torrentPoll is how often completion markers are checked.
	torrentPoll = 10 * time.Millisecond
	// doneEnv names the marker file the completion hook creates.
	doneEnv = "FLEETLAB_DONE"
)

// doneHook is run by aria2 (--on-bt-download-complete) when a host has every
// piece, verified, and starts seeding: it creates the host's marker file.
const doneHook = "#!/bin/sh\n# fleetlab: aria2 has the whole torrent, verified; seeding starts.\n: > \"$" + doneEnv + "\"\n"

// torrentRun is one run of the BitTorrent baseline. Every tool runs under
// toolCtx; stop cancels it (killing their process groups) and waits.
type torrentRun struct {
	e       *env
	dir     string // e.dir/aria2: everything the run writes
	torrent string
	hash    [20]byte
	cancel  context.CancelFunc
	toolCtx context.Context
	tracker *toolProc
	seeder  *toolProc
	peers   []*torrentPeer
	broken  []string // the tracker or seeder exited during the run
}

// torrentPeer is one agent host's aria2.
type torrentPeer struct {
	host   *netlab.Host
	dir    string
	marker string
	proc   *toolProc
	done   time.Duration // since the start; 0 until the marker appeared
	failed string        // why the host cannot finish, if it cannot
}

// runTorrent is the BitTorrent baseline: opentracker on the origin host, an
// aria2 seeder there with the artifact, and aria2 on every agent host, all
// started at the same moment, each seeding forever once complete (as
// fleetcast agents keep serving). A host is done when aria2 ran its
// completion hook and the file has the artifact's SHA-256. When every host
// is done or failed, or ctx ended (unfinished hosts are then Problems), all
// aria2s are killed; their CPU time and peak RSS include the seeding until
// then. OriginEgress includes the tracker's replies to announces (a few
// hundred bytes a second). The error is for a run that could not be set up.
func runTorrent(ctx context.Context, e *env) (runResult, error) {
	res := runResult{System: "aria2", Scenario: "base"}
	want, err := fileSHA256(e.artifact)
	if err != nil {
		return res, fmt.Errorf("aria2 baseline: hash the artifact: %w", err)
	}
	t := &torrentRun{e: e, dir: filepath.Join(e.dir, "aria2")}
	t.toolCtx, t.cancel = context.WithCancel(ctx)
	defer t.stop()
	if err := t.setUp(ctx); err != nil {
		return res, fmt.Errorf("aria2 baseline: %w", err)
	}
	before, err := e.origin.TxBytes()
	if err != nil {
		return res, fmt.Errorf("aria2 baseline: %w", err)
	}
	res.Start = time.Now()
	t.startPeers()
	t.watch(ctx, res.Start)
	res.Elapsed = time.Since(res.Start)
	after, err := e.origin.TxBytes()
	if err != nil {
		return res, fmt.Errorf("aria2 baseline: %w", err)
	}
	res.OriginEgress = after - before
	t.stop()
	res.Hosts, res.Problems = t.results(ctx, want)
	return res, nil
}

// setUp makes the torrent, starts the tracker, waits until it serves the
// torrent (it loads its whitelist in a thread of its own after it listens),
// starts the seeder and waits until the tracker lists it, so that every
// downloader's first announce finds it; then it prepares every host's aria2.
func (t *torrentRun) setUp(ctx context.Context) error {
	if err := os.RemoveAll(t.dir); err != nil {
		return fmt.Errorf("clear an earlier run: %w", err)
	}
	if err := os.MkdirAll(t.dir, 0o755); err != nil {
		return err
	}
	if err := t.makeTorrent(ctx); err != nil {
		return err
	}
	if err := t.startTracker(); err != nil {
		return err
	}
	tc := newTrackerClient(t.e.origin, t.hash)
	defer tc.close()
	if err := t.pollTracker(ctx, "tracker accepts the torrent", tc.accepts); err != nil {
		return err
	}
	if err := t.startSeeder(); err != nil {
		return err
	}
	if err := t.pollTracker(ctx, "tracker lists the seeder", tc.hasSeeder); err != nil {
		return err
	}
	return t.preparePeers()
}

// makeTorrent writes the artifact's .torrent (1 MiB pieces, the origin's
// tracker, not private, no web seed) with mktorrent and reads its info hash.
func (t *torrentRun) makeTorrent(ctx context.Context) error {
	t.torrent = filepath.Join(t.dir, "artifact.torrent")
	cmd := exec.CommandContext(ctx, "mktorrent", "-l", torrentPieceLog, "-d",
		"-a", "http://"+t.e.origin.IP()+":"+trackerPort+"/announce", "-o", t.torrent, t.e.artifact)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mktorrent: %w: %s", err, lastLines(out, 3))
	}
	b, err := readBounded(t.torrent, maxTorrentBytes)
	if err != nil {
		return err
	}
	t.hash, err = infoHash(b)
	return err
}

// startTracker runs opentracker on the origin host. The Debian build only
// tracks whitelisted info hashes and chroots to -d before reading the
// whitelist as user nobody, so the whitelist sits in a world-readable
// directory of its own and the config names it relative to that root.
func (t *torrentRun) startTracker() error {
	root := filepath.Join(t.dir, "tracker-root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(root, 0o755); err != nil { // whatever the umask
		return err
	}
	if err := writeWorldReadable(filepath.Join(root, "whitelist.txt"), hex.EncodeToString(t.hash[:])+"\n"); err != nil {
		return err
	}
	conf := filepath.Join(t.dir, "opentracker.conf")
	if err := writeWorldReadable(conf, "access.whitelist /whitelist.txt\n"); err != nil {
		return err
	}
	cmd := t.e.origin.Command(t.toolCtx, "opentracker", "-f", conf, "-d", root,
		"-i", t.e.origin.IP(), "-p", trackerPort)
	var err error
	t.tracker, err = startTool(cmd, filepath.Join(t.dir, "opentracker.log"), t.dir)
	return err
}

func writeWorldReadable(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Chmod(path, 0o644)
}

// startSeeder runs aria2 on the origin host over a link to the artifact, so
// that whatever aria2 writes lands under the run's directory. It seeds at
// once, without hashing the file first (as the origin of fleetcast does).
func (t *torrentRun) startSeeder() error {
	dir := filepath.Join(t.dir, "origin")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	art, err := filepath.Abs(t.e.artifact)
	if err != nil {
		return err
	}
	if err := os.Symlink(art, filepath.Join(dir, filepath.Base(art))); err != nil {
		return err
	}
	args := append(aria2Args(dir, t.torrent), "--bt-seed-unverified=true")
	cmd := t.e.origin.Command(t.toolCtx, "aria2c", args...)
	t.seeder, err = startTool(cmd, filepath.Join(dir, "aria2.log"), dir)
	return err
}

// aria2Args are the options of every aria2 of the run: no DHT or local
// peer discovery (the tracker and peer exchange find peers), seed forever,
// a fixed port, short announce interval, no rate limits, no config file.
func aria2Args(dir, torrent string) []string {
	return []string{
		"--no-conf=true", "--dir=" + dir, "--seed-ratio=0.0",
		"--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=true",
		"--listen-port=" + btListenPort, "--bt-tracker-interval=" + announceInterval,
		"--file-allocation=none", "--check-integrity=false", "--summary-interval=0",
		"--console-log-level=warn", "--show-console-readout=false",
		"--max-upload-limit=0", "--max-overall-upload-limit=0",
		"--stop-with-process=" + strconv.Itoa(os.Getpid()), torrent,
	}
}

// preparePeers makes each host's directory and aria2 command, and the
// completion hook they share.
func (t *torrentRun) preparePeers() error {
	hook := filepath.Join(t.dir, "done-hook.sh")
	if err := os.WriteFile(hook, []byte(doneHook), 0o755); err != nil {
		return err
	}
	for _, h := range t.e.hosts {
		p := &torrentPeer{host: h, dir: filepath.Join(t.dir, h.Name())}
		if err := os.Mkdir(p.dir, 0o755); err != nil {
			return err
		}
		p.marker = filepath.Join(p.dir, "done")
		cmd := h.Command(t.toolCtx, "aria2c", append(aria2Args(p.dir, t.torrent), "--on-bt-download-complete="+hook)...)
		cmd.Env = append(toolEnv(p.dir), doneEnv+"="+p.marker)
		p.proc = &toolProc{cmd: cmd, dir: p.dir, log: filepath.Join(p.dir, "aria2.log")}
		t.peers = append(t.peers, p)
	}
	return nil
}

// startPeers starts every host's aria2, as close together as possible.
func (t *torrentRun) startPeers() {
	for _, p := range t.peers {
		if err := p.proc.start(); err != nil {
			p.failed = err.Error()
		}
	}
}

// stop notes each host's aria2's peak RSS, kills every tool of the run and
// waits for them; it may be called more than once.
func (t *torrentRun) stop() {
	for _, p := range t.peers {
		p.proc.notePeakRSS()
	}
	t.cancel()
	for _, p := range t.peers {
		p.proc.wait()
	}
	t.seeder.wait()
	t.tracker.wait()
}

// watch waits until every host is done or failed, or ctx ends, noting when
// each host's marker appeared and whether the tracker or seeder died.
func (t *torrentRun) watch(ctx context.Context, start time.Time) {
	tick := time.NewTicker(torrentPoll)
	defer tick.Stop()
	for {
		pending := 0
		for _, p := range t.peers {
			if !p.settled(start) {
				pending++
			}
		}
		if pending == 0 {
			return
		}
		for _, p := range []*toolProc{t.tracker, t.seeder} {
			if p.hasExited() && !p.reported {
				p.reported = true
				t.broken = append(t.broken, p.exitError().Error())
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// settled reports whether the host is done or cannot finish, noting its
// completion time (the marker's modification time) when it is done.
func (p *torrentPeer) settled(start time.Time) bool {
	if p.done > 0 || p.failed != "" {
		return true
	}
	if fi, err := os.Stat(p.marker); err == nil {
		p.done = min(max(fi.ModTime().Sub(start), time.Nanosecond), time.Since(start))
		return true
	}
	if p.proc.hasExited() {
		p.failed = p.proc.exitError().Error()
		return true
	}
	return false
}

// results are the hosts' rows and the run's problems, once every tool has
// been stopped.
func (t *torrentRun) results(ctx context.Context, want [32]byte) ([]hostResult, []string) {
	problems := t.broken
	var hosts []hostResult
	for _, p := range t.peers {
		hr := hostResult{Host: p.host.Name(), OriginBytes: -1, PeerBytes: -1}
		hr.PeakRSS, hr.CPU = p.proc.peakRSS, cpuOf(p.proc.cmd.ProcessState)
		switch {
		case p.failed != "":
			hr.Err = p.failed
		case p.done == 0:
			hr.Err = fmt.Sprintf("not done when the run ended (%v)", ctx.Err())
		default:
			hr.Err = checkDownload(filepath.Join(p.dir, filepath.Base(t.e.artifact)), want)
		}
		if hr.Err == "" {
			hr.Done = p.done
		} else {
			problems = append(problems, p.host.Name()+": "+hr.Err)
		}
		hosts = append(hosts, hr)
	}
	return hosts, problems
}

// waitOrDone waits for d or until ctx ends.
func waitOrDone(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
