package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// compatBase is the last commit before the agent was re-laid out into
// packages (config, store, swarm, fetch, peerproto): the build an agent of
// today's tree must interoperate with, on the LAN and on disk.
const compatBase = "1bd2126b4afa41b4ccb5b2b5daeff16c66b580bf"

var (
	oldBinOnce sync.Once
	oldBin     string
	oldBinErr  error
)

// oldFleetcast builds fleetcast at compatBase from the repository's history
// (once per test binary). Without the history (a source archive) it skips,
// unless FLEETCAST_REQUIRE_COMPAT=1 (as .ci/run sets) makes that a failure.
func oldFleetcast(t *testing.T) string {
	t.Helper()
	oldBinOnce.Do(func() { oldBin, oldBinErr = buildAt(compatBase) })
	if oldBinErr != nil {
		if ok, _ := strconv.ParseBool(os.Getenv("FLEETCAST_REQUIRE_COMPAT")); ok {
			t.Fatalf("build fleetcast at %s: %v", compatBase[:12], oldBinErr)
		}
		t.Skipf("build fleetcast at %s: %v (set FLEETCAST_REQUIRE_COMPAT=1 to fail instead)", compatBase[:12], oldBinErr)
	}
	return oldBin
}

// buildAt builds cmd/fleetcast of commit in a temporary directory.
func buildAt(commit string) (string, error) {
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return "", err
	}
	repo := strings.TrimSpace(string(top))
	src, err := os.MkdirTemp("", "fleetcast-compat-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(src)
	archive := exec.Command("git", "-C", repo, "archive", "--format=tar", commit)
	untar := exec.Command("tar", "-x", "-C", src)
	var stderr, untarErr bytes.Buffer // apart: each command's copier writes its own
	archive.Stderr, untar.Stderr = &stderr, &untarErr
	if untar.Stdin, err = archive.StdoutPipe(); err != nil {
		return "", err
	}
	if err := untar.Start(); err != nil {
		return "", err
	}
	if err := archive.Run(); err != nil {
		untar.Wait()
		return "", &exec.ExitError{ProcessState: archive.ProcessState, Stderr: stderr.Bytes()}
	}
	if err := untar.Wait(); err != nil {
		return "", &buildError{out: untarErr.Bytes(), err: err}
	}
	bin := filepath.Join(filepath.Dir(fleetcastBin), "fleetcast-old") // removed with fleetcastBin by TestMain
	build := exec.Command("go", "build", "-o", bin, "./cmd/fleetcast")
	build.Dir = src
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if out, err := build.CombinedOutput(); err != nil {
		return "", &buildError{out: out, err: err}
	}
	return bin, nil
}

type buildError struct {
	out []byte
	err error
}

func (e *buildError) Error() string { return e.err.Error() + ": " + tail(string(e.out), 20) }

// TestCompatDataDir: a data directory written by the build before the
// re-layout is read by today's: the release it installed is up to date, and
// the next release reuses its chunks from the store (a delta).
func TestCompatDataDir(t *testing.T) {
	old := oldFleetcast(t)
	e := newAgentEnv(t)
	v1 := randomBytes(5, 2<<20)
	e.publish(v1, "", "720h")
	e.onceWith(old, 0, "release installed")
	e.wantTarget(v1)

	if log := e.onceWith(fleetcastBin, 0); strings.Contains(log, "installing") {
		t.Fatalf("today's agent installed again what the old one installed:\n%s", log)
	}
	v2 := append(bytes.Clone(v1[:len(v1)-64<<10]), randomBytes(6, 64<<10)...)
	e.publish(v2, "", "720h")
	log := e.onceWith(fleetcastBin, 0, "release installed")
	e.wantTarget(v2)
	if reused := logInt(t, log, "artifact verified", "reused_local_bytes"); reused < int64(len(v1))/2 {
		t.Errorf("today's agent reused %d bytes of the old agent's store; want most of the %d", reused, len(v1))
	}
	if st := e.state(); st.Installed != 2 || st.Trusted != 2 {
		t.Errorf("state %+v, want installed and trusted 2", st)
	}
}

// onceWith runs one cycle of the agent binary bin and fails the test unless it
// exits with code and its log contains each of want.
func (e *agentEnv) onceWith(bin string, code int, want ...string) string {
	e.t.Helper()
	var out bytes.Buffer
	cmd := e.agentCmd(&out)
	cmd.Path, cmd.Args[0] = bin, bin
	err := cmd.Run()
	got := 0
	if ee, ok := err.(*exec.ExitError); ok {
		got = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run %s: %v", bin, err)
	}
	if got != code {
		e.t.Fatalf("%s agent --once: exit %d, want %d\n%s", filepath.Base(bin), got, code, out.String())
	}
	for _, w := range want {
		if !strings.Contains(out.String(), w) {
			e.t.Fatalf("%s agent --once log lacks %q:\n%s", filepath.Base(bin), w, out.String())
		}
	}
	return out.String()
}

// TestCompatPeers: an agent of the build before the re-layout and one of
// today's, on one LAN with a fleet secret, swap chunks both ways: the
// origin sends about one copy and each gets part of the release from the
// other.
func TestCompatPeers(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM on Windows")
	}
	old := oldFleetcast(t)
	c := newCLI(t)
	agents, origin := startLoopFleetOf(t, c, old, fleetcastBin)
	data := randomBytes(78, 4<<20)
	publishLoopRelease(t, c, data)
	waitLoopInstalled(t, agents, 1)
	for _, a := range agents {
		st, err := a.status("https")
		if err != nil {
			t.Fatal(err)
		}
		tr := st.Subscriptions[0].LastTransfer
		t.Logf("%s: origin %d bytes, peer %d bytes, uploaded %d bytes", a.name, tr.Origin, tr.Peer, st.UploadedBytes)
		if tr.Peer == 0 || st.UploadedBytes == 0 {
			t.Errorf("%s took %d bytes from its peer and gave %d: want chunks swapped both ways", a.name, tr.Peer, st.UploadedBytes)
		}
	}
	if ratio := float64(origin.Served().Bytes) / float64(len(data)); ratio > 1.3 {
		t.Errorf("origin sent %.2fx the artifact to an old and a new agent; want about 1x", ratio)
	}
}
