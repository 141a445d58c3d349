package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/internal/origintest"
	"github.com/fleetcast/fleetcast/manifest"
)

// End-to-end tests of "fleetcast agent --once": the real binary against an
// origin directory written by the real "fleetcast publish", served over HTTP
// by origintest, which can misbehave.

const (
	e2eConns   = 4
	e2eProduct = "app"
	e2eChannel = "stable"
)

// agentEnv is one machine: a CLI dir with keys, root and origin, a served
// origin and an agent configuration.
type agentEnv struct {
	*cli
	origin *origintest.Origin
	target string
	config string
	seq    int
}

func newAgentEnv(t *testing.T) *agentEnv {
	t.Helper()
	c := newCLI(t)
	setupRoot(t, c, []string{"a"}, "1")
	c.ok("root", "publish", "--origin", "origin", "root.json")
	e := &agentEnv{cli: c, target: c.path(filepath.Join("install", "app"))}
	e.origin = origintest.New(t, c.path("origin"))
	e.writeConfig("")
	return e
}

func (e *agentEnv) writeConfig(extra string) {
	e.t.Helper()
	cfg := fmt.Sprintf(`data_dir = "data"
origin = %q
root = "root.json"
listen = ""
allowed_targets = [%q]
allowed_installers = ["file", "command"] # command: some releases name a health check
origin_connections = %d
retries = 1
retry_backoff = "10ms"
request_timeout = "20s"
%s
[[subscription]]
product = %q
channel = %q
`, e.origin.URL(), e.path("install")+string(filepath.Separator), e2eConns, extra, e2eProduct, e2eChannel)
	e.write("agent.toml", []byte(cfg))
	e.config = e.path("agent.toml")
}

// publish publishes data as the next version with a health check (argv
// joined by spaces) and expiry.
func (e *agentEnv) publish(data []byte, healthCheck, expires string) {
	e.t.Helper()
	e.seq++
	name := fmt.Sprintf("release-%d.bin", e.seq)
	e.write(name, data)
	args := []string{"publish", "--origin", "origin", "--root", "root.json", "--key", "a.key",
		"--product", e2eProduct, "--channel", e2eChannel, "--version", fmt.Sprintf("1.%d", e.seq),
		"--installer", "file", "--target", e.target, "--mode", "0755", "--expires", expires,
		"--chunk-min", "16384", "--chunk-avg", "65536", "--chunk-max", "262144"}
	if healthCheck != "" {
		args = append(args, "--health-check", healthCheck)
	}
	args = append(args, name)
	e.ok(args...)
}

// agentCmd is the agent binary, configured for this env, not started.
func (e *agentEnv) agentCmd(stderr *bytes.Buffer) *exec.Cmd {
	cmd := exec.Command(fleetcastBin, "agent", "--config", e.config, "--once")
	cmd.Dir = e.dir
	cmd.Env = filteredEnv()
	cmd.Stdout, cmd.Stderr = stderr, stderr
	return cmd
}

// once runs one agent cycle and returns its exit code and log.
func (e *agentEnv) once() (int, string) {
	e.t.Helper()
	var out bytes.Buffer
	err := e.agentCmd(&out).Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String()
	case err != nil:
		e.t.Fatalf("run agent: %v", err)
	}
	return 0, out.String()
}

// onceWant runs one cycle and fails the test unless it exits with code and
// its log contains each of want.
func (e *agentEnv) onceWant(code int, want ...string) string {
	e.t.Helper()
	got, log := e.once()
	if got != code {
		e.t.Fatalf("agent --once: exit %d, want %d\n%s", got, code, log)
	}
	for _, w := range want {
		if !strings.Contains(log, w) {
			e.t.Fatalf("agent --once log lacks %q:\n%s", w, log)
		}
	}
	return log
}

type e2eState struct {
	Trusted   uint64 `json:"trusted_sequence"`
	Installed uint64 `json:"installed_sequence"`
	Failed    uint64 `json:"failed_sequence"`
}

func (e *agentEnv) state() e2eState {
	e.t.Helper()
	var st e2eState
	b, err := os.ReadFile(e.path(filepath.Join("data", "state", e2eProduct, e2eChannel+".json")))
	if errors.Is(err, os.ErrNotExist) {
		return st
	}
	if err != nil {
		e.t.Fatal(err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		e.t.Fatalf("state: %v\n%s", err, b)
	}
	return st
}

// wantTarget checks that the target is exactly want (nil: absent), mode 0755.
func (e *agentEnv) wantTarget(want []byte) {
	e.t.Helper()
	got, err := os.ReadFile(e.target)
	if want == nil {
		if !errors.Is(err, os.ErrNotExist) {
			e.t.Fatalf("target exists (err %v, %d bytes); want it absent", err, len(got))
		}
		return
	}
	if err != nil {
		e.t.Fatalf("target: %v", err)
	}
	if !bytes.Equal(got, want) {
		e.t.Fatalf("target is %d bytes (sha256 %x), want the %d-byte release (sha256 %x)", len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
	}
	fi, err := os.Stat(e.target)
	if err != nil {
		e.t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o755 {
		e.t.Errorf("target mode %v, want 0755", fi.Mode().Perm())
	}
}

// chunksOf reads the chunk list of the origin's manifest of sequence seq,
// without verifying it (the agent does that).
func (e *agentEnv) chunksOf(seq int) []manifest.Chunk {
	e.t.Helper()
	b, err := os.ReadFile(e.path(filepath.Join("origin", filepath.FromSlash(manifest.HistoryPath(e2eProduct, e2eChannel, uint64(seq))))))
	if err != nil {
		e.t.Fatal(err)
	}
	var env struct{ Payload string }
	if err := json.Unmarshal(b, &env); err != nil {
		e.t.Fatal(err)
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		e.t.Fatal(err)
	}
	var m struct{ Chunks []manifest.Chunk }
	if err := json.Unmarshal(payload, &m); err != nil {
		e.t.Fatal(err)
	}
	return m.Chunks
}

// logInt returns the integer value of key=N in the first log line with msg.
func logInt(t *testing.T, log, msg, key string) int64 {
	t.Helper()
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "msg=\""+msg+"\"") && !strings.Contains(line, "msg="+msg+" ") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, key+"="); ok {
				var n int64
				if _, err := fmt.Sscan(v, &n); err != nil {
					t.Fatalf("log %s=%q: %v", key, v, err)
				}
				return n
			}
		}
	}
	t.Fatalf("no %q line with %s= in log:\n%s", msg, key, log)
	return 0
}

func TestAgentFirstInstallThenUpToDate(t *testing.T) {
	e := newAgentEnv(t)
	rel := randomBytes(1, 1<<20)
	e.publish(rel, "true", "720h")

	e.onceWant(0, "release installed")
	e.wantTarget(rel)
	if st := e.state(); st.Installed != 1 || st.Trusted != 1 || st.Failed != 0 {
		t.Errorf("state %+v, want trusted and installed 1", st)
	}
	s := e.origin.Take()
	if reqs, n, want := s.ChunkRequests(), s.ChunkBytes, len(e.chunksOf(1)); reqs != want || n != int64(len(rel)) {
		t.Errorf("first install fetched %d chunks, %d bytes; want %d chunks, %d bytes", reqs, n, want, len(rel))
	}

	log := e.onceWant(0)
	if strings.Contains(log, "release installed") {
		t.Errorf("second --once installed again:\n%s", log)
	}
	if reqs := e.origin.Take().ChunkRequests(); reqs != 0 {
		t.Errorf("second --once made %d chunk requests, want 0", reqs)
	}
	e.wantTarget(rel)
	if st := e.state(); st.Installed != 1 {
		t.Errorf("state %+v after second cycle, want installed 1", st)
	}
}

func TestAgentDeltaUpdate(t *testing.T) {
	e := newAgentEnv(t)
	const size = 4 << 20
	v1 := randomBytes(2, size)
	e.publish(v1, "", "720h")
	e.onceWant(0, "release installed")
	e.wantTarget(v1)
	e.origin.Take()

	v2 := bytes.Clone(v1)
	copy(v2[size/2:], randomBytes(3, size/100)) // 1% changed, in one place
	e.publish(v2, "", "720h")
	log := e.onceWant(0, "release installed")
	e.wantTarget(v2)
	if st := e.state(); st.Installed != 2 || st.Trusted != 2 {
		t.Errorf("state %+v, want installed 2", st)
	}
	s := e.origin.Take()
	reqs, n := s.ChunkRequests(), s.ChunkBytes
	t.Logf("update with 1%% changed: origin served %d chunks, %d bytes = %.1f%% of the %d-byte artifact", reqs, n, 100*float64(n)/size, size)
	if n >= size/10 {
		t.Errorf("update fetched %d bytes from the origin, want < 10%% of %d", n, size)
	}
	if agentSaid := logInt(t, log, "artifact verified", "origin_bytes"); agentSaid != n {
		t.Errorf("agent logged origin_bytes=%d, origin served %d", agentSaid, n)
	}
}

func TestAgentHealthCheckRollback(t *testing.T) {
	e := newAgentEnv(t)
	v1 := randomBytes(4, 512<<10)
	e.publish(v1, "true", "720h")
	e.onceWant(0, "release installed")

	v2 := randomBytes(5, 512<<10)
	e.publish(v2, "false", "720h")
	code, log := e.once()
	if code == 0 {
		t.Fatalf("agent installed a release whose health check fails: exit 0\n%s", log)
	}
	if !strings.Contains(log, "health check failed") {
		t.Errorf("log does not say the health check failed:\n%s", log)
	}
	e.wantTarget(v1)
	if st := e.state(); st.Installed != 1 || st.Failed != 2 || st.Trusted != 2 {
		t.Errorf("state %+v, want installed 1, failed 2, trusted 2", st)
	}
	e.origin.Take()

	// KnownBad is not an error: Once returns nil and the agent exits 0,
	// whether the origin answers 304 (the failed manifest's ETag was saved)
	// or sends the manifest again.
	for _, noCache := range []bool{false, true} {
		answer, want := origintest.Honest, []string{}
		if noCache {
			answer = origintest.Never304
			want = append(want, "failed its health check, or was refused by its installer, before")
		}
		e.origin.Revalidate(answer)
		log = e.onceWant(0, want...)
		if strings.Contains(log, "installing") {
			t.Errorf("known-bad release installed again (noCache %v):\n%s", noCache, log)
		}
		if reqs := e.origin.Take().ChunkRequests(); reqs != 0 {
			t.Errorf("known-bad cycle made %d chunk requests, want 0 (noCache %v)", reqs, noCache)
		}
		e.wantTarget(v1)
		if st := e.state(); st.Installed != 1 || st.Failed != 2 {
			t.Errorf("state %+v after known-bad cycle, want installed 1, failed 2 (noCache %v)", st, noCache)
		}
	}
}

func TestAgentRefusesReplayedManifest(t *testing.T) {
	e := newAgentEnv(t)
	v1, v2 := randomBytes(6, 256<<10), randomBytes(7, 256<<10)
	e.publish(v1, "", "720h")
	e.publish(v2, "", "720h")
	e.onceWant(0, "release installed")
	e.wantTarget(v2)
	e.origin.Take()

	old, err := os.ReadFile(e.path(filepath.Join("origin", filepath.FromSlash(manifest.HistoryPath(e2eProduct, e2eChannel, 1)))))
	if err != nil {
		t.Fatal(err)
	}
	e.origin.Replace(manifest.LatestPath(e2eProduct, e2eChannel), old)
	e.onceWant(1, "rollback")
	e.wantTarget(v2)
	if st := e.state(); st.Installed != 2 || st.Trusted != 2 {
		t.Errorf("state %+v after replay, want installed and trusted 2", st)
	}
	if reqs := e.origin.Take().ChunkRequests(); reqs != 0 {
		t.Errorf("replayed manifest caused %d chunk requests, want 0", reqs)
	}
}

func TestAgentRefusesExpiredManifest(t *testing.T) {
	e := newAgentEnv(t)
	e.publish(randomBytes(8, 64<<10), "", "1s") // the shortest expiry publish accepts
	// Wait, by polling the clock, until the manifest's expiry has passed.
	b, err := os.ReadFile(e.path(filepath.Join("origin", filepath.FromSlash(manifest.HistoryPath(e2eProduct, e2eChannel, 1)))))
	if err != nil {
		t.Fatal(err)
	}
	var env struct{ Payload string }
	json.Unmarshal(b, &env)
	payload, _ := base64.StdEncoding.DecodeString(env.Payload)
	var m struct{ Expires time.Time }
	if err := json.Unmarshal(payload, &m); err != nil || m.Expires.IsZero() {
		t.Fatalf("manifest expiry: %v\n%s", err, payload)
	}
	for deadline := time.Now().Add(5 * time.Second); !time.Now().After(m.Expires); {
		if time.Now().After(deadline) {
			t.Fatalf("manifest expiring at %v still valid at %v", m.Expires, time.Now())
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.onceWant(1, "expired")
	e.wantTarget(nil)
	if st := e.state(); st.Installed != 0 || st.Trusted != 0 {
		t.Errorf("state %+v after expired manifest, want nothing trusted or installed", st)
	}
	if reqs := e.origin.Take().ChunkRequests(); reqs != 0 {
		t.Errorf("expired manifest caused %d chunk requests, want 0", reqs)
	}
}

func TestAgentCorruptChunk(t *testing.T) {
	e := newAgentEnv(t)
	rel := randomBytes(9, 2<<20)
	e.publish(rel, "", "720h")
	chunks := e.chunksOf(1)
	bad := chunks[len(chunks)-1].SHA256 // last, so that others are verified first
	e.origin.Break(origintest.Corrupt, origintest.Always, bad)

	log := e.onceWant(1, manifest.ErrMismatch.Error(), bad.String())
	e.wantTarget(nil)
	if st := e.state(); st.Installed != 0 {
		t.Errorf("state %+v after corrupt chunk, want nothing installed", st)
	}
	first := e.origin.Take().Chunks
	if n := first[bad]; n != 2 {
		t.Errorf("corrupt chunk requested %d times, want 2 (retries = 1)", n)
	}
	if strings.Contains(log, "whole-file check failed") {
		t.Errorf("a chunk the origin served corrupt was reported as a whole-file check failure:\n%s", log)
	}

	e.origin.Mend()
	log = e.onceWant(0, "release installed", "resuming release from the store")
	e.wantTarget(rel)
	s := e.origin.Take()
	reqs, second, n := s.ChunkRequests(), s.Chunks, s.ChunkBytes
	resumed := logInt(t, log, "resuming release from the store", "verified_bytes")
	t.Logf("second run: %d chunk requests, %d bytes; %d bytes resumed from the first run", reqs, n, resumed)
	if resumed == 0 || resumed+n != int64(len(rel)) {
		t.Errorf("second run fetched %d bytes and resumed %d; want them to add up to the %d-byte artifact, resumed > 0", n, resumed, len(rel))
	}
	// Chunks fetched again: at most those in flight when the first run gave up.
	again := 0
	for d := range second {
		if first[d] > 0 && d != bad {
			again++
		}
	}
	if again > e2eConns-1 {
		t.Errorf("%d good chunks of the first run fetched again, want at most %d in flight", again, e2eConns-1)
	}
}

func TestAgentRefusesBadLengths(t *testing.T) {
	e := newAgentEnv(t)
	rel := randomBytes(10, 512<<10)
	e.publish(rel, "", "720h")
	for _, tc := range []struct {
		fault origintest.Fault
		want  string
	}{
		{origintest.Truncate, "response cut short: "},
		{origintest.LongDeclared, "response too long: Content-Length "},
		{origintest.ShortDeclared, "response cut short: Content-Length "}, // declared length short of the chunk's
		{origintest.ChunkedExtra, "response too long: more than the "},
		{origintest.ChunkedShort, "response cut short: "},
	} {
		t.Run(tc.fault.String(), func(t *testing.T) {
			// A fresh agent (own data dir) against the same origin.
			e.writeConfig("")
			data := fmt.Sprintf("data-%s", tc.fault)
			cfg, _ := os.ReadFile(e.config)
			e.write("agent-"+tc.fault.String()+".toml", bytes.Replace(cfg, []byte(`data_dir = "data"`), []byte(`data_dir = "`+data+`"`), 1))
			sub := *e
			sub.cli = &cli{t: t, dir: e.dir, env: e.env}
			sub.config = e.path("agent-" + tc.fault.String() + ".toml")
			e.origin.Mend()
			e.origin.Break(tc.fault, origintest.Always)
			e.origin.Take()
			sub.onceWant(1, tc.want, "update cycle failed")
			sub.wantTarget(nil)
			if reqs := e.origin.Take().ChunkRequests(); reqs == 0 {
				t.Errorf("no chunk requests: the fault was never exercised")
			}
		})
	}
	// The same origin, served correctly, installs.
	e.origin.Mend()
	e.onceWant(0, "release installed")
	e.wantTarget(rel)
}

func TestAgentResumesAfterKill(t *testing.T) {
	e := newAgentEnv(t)
	rel := randomBytes(11, 2<<20)
	e.publish(rel, "", "720h")
	nchunks := len(e.chunksOf(1))
	hangFrom := nchunks / 2 // the first chunk request held
	gate := e.origin.Hold(hangFrom - 1)

	var log bytes.Buffer
	cmd := e.agentCmd(&log)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	for deadline := time.Now().Add(15 * time.Second); e.origin.Served().ChunkRequests() < hangFrom; {
		select {
		case err := <-waited:
			t.Fatalf("agent exited (%v) before request %d hung:\n%s", err, hangFrom, log.String())
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("origin saw %d chunk requests, want %d", e.origin.Served().ChunkRequests(), hangFrom)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-waited
	gate.Open()
	first := e.origin.Take().ChunkRequests()
	e.wantTarget(nil)

	out := e.onceWant(0, "release installed", "resuming release from the store")
	e.wantTarget(rel)
	second := e.origin.Take().ChunkRequests()
	t.Logf("%d chunks: %d requests before the kill, %d after", nchunks, first, second)
	if total := first + second; total > nchunks+e2eConns {
		t.Errorf("%d chunk requests across both runs, want at most %d chunks + %d connections\n%s", total, nchunks, e2eConns, out)
	}
}
