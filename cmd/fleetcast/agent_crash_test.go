package main

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/internal/origintest"
	"github.com/fleetcast/fleetcast/manifest"
)

// crashChunkDelay slows every chunk response (origintest.Origin.Delay) so
// that a kill can land in the middle of the download.
const crashChunkDelay = 10 * time.Millisecond

// crashOriginConnections is the agent's default origin_connections: at most
// this many chunks are in flight when the agent is killed.
const crashOriginConnections = 4

// crashChunkFlags make small chunks, so a 3 MiB release has dozens of them.
var crashChunkFlags = []string{"--chunk-min", "16384", "--chunk-avg", "32768", "--chunk-max", "131072"}

// crashConfig writes agent.toml for product app/stable of the origin at
// URL origin.
func crashConfig(t *testing.T, c *cli, origin, dataDir, allowed string) string {
	t.Helper()
	cfg := fmt.Sprintf(`data_dir = %q
origin = %q
root = %q
listen = ""
allowed_targets = [%q]
retries = 4
retry_backoff = "10ms"

[[subscription]]
product = "app"
channel = "stable"
`, dataDir, origin, c.path("root.json"), allowed)
	c.write("agent.toml", []byte(cfg))
	return c.path("agent.toml")
}

// crashPublish publishes data as version of app/stable to c's origin dir.
func crashPublish(t *testing.T, c *cli, version, target string, data []byte) {
	t.Helper()
	name := "app-" + version + ".bin"
	c.write(name, data)
	args := []string{"publish", "--origin", "origin", "--root", "root.json", "--key", "a.key",
		"--product", "app", "--channel", "stable", "--version", version,
		"--installer", "file", "--target", target, "--mode", "0755"}
	args = append(args, crashChunkFlags...)
	c.ok(append(args, name)...)
}

// crashAgent is one agent --once process, killable.
type crashAgent struct {
	cmd    *exec.Cmd
	stderr crashLog
}

// crashLog collects the agent's log and kills the agent as soon as a line
// containing killOn is written. Read it only after the agent's Wait.
// It does not embed bytes.Buffer: io.Copy would use the promoted ReadFrom
// and never call Write.
type crashLog struct {
	buf    bytes.Buffer
	killOn string
	kill   func()
}

func (l *crashLog) Write(p []byte) (int, error) {
	n, err := l.buf.Write(p)
	if l.killOn != "" && bytes.Contains(p, []byte(l.killOn)) {
		l.kill()
		l.killOn = ""
	}
	return n, err
}

func (l *crashLog) String() string { return l.buf.String() }

// crashStartAgent starts agent --once; killOn, if not empty, kills it at
// the first log line containing it.
func crashStartAgent(t *testing.T, c *cli, config, killOn string) *crashAgent {
	t.Helper()
	a := &crashAgent{cmd: exec.Command(fleetcastBin, "agent", "--config", config, "--once")}
	a.cmd.Dir = c.dir
	a.cmd.Env = filteredEnv()
	a.stderr.killOn = killOn
	a.stderr.kill = func() { a.cmd.Process.Kill() }
	a.cmd.Stderr = &a.stderr
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return a
}

// wait returns the exit code, or -1 when killed by a signal.
func (a *crashAgent) wait(t *testing.T) int {
	t.Helper()
	err := a.cmd.Wait()
	if err == nil {
		return 0
	}
	if _, ok := err.(*exec.ExitError); !ok {
		t.Fatalf("wait agent: %v", err)
	}
	return a.cmd.ProcessState.ExitCode()
}

// lastMsg is the msg of the agent's last log line: where it was killed.
func (a *crashAgent) lastMsg() string {
	lines := strings.Split(strings.TrimSpace(a.stderr.String()), "\n")
	last := lines[len(lines)-1]
	if i := strings.Index(last, "msg="); i >= 0 {
		last = last[i+len("msg="):]
		if j := strings.Index(last, " product="); j >= 0 {
			last = last[:j]
		}
	}
	if last == "" {
		return "(no log yet)"
	}
	return last
}

// crashCopyTree makes dst a copy of the directory src (regular files, dirs).
func crashCopyTree(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.RemoveAll(dst); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(out, info.Mode().Perm())
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("%s: not a regular file", p)
		}
		return crashCopyFile(p, out, info.Mode().Perm())
	})
	if err != nil {
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
}

func crashCopyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// crashWhich says which release the file at path holds: 1, 2, or 0 with a
// description of what is there instead.
func crashWhich(path string, rel1, rel2 []byte) (int, string) {
	b, err := os.ReadFile(path)
	switch {
	case err != nil:
		return 0, err.Error()
	case bytes.Equal(b, rel1):
		return 1, ""
	case bytes.Equal(b, rel2):
		return 2, ""
	}
	return 0, fmt.Sprintf("%d bytes matching neither release", len(b))
}

func crashState(t *testing.T, dataDir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "state", "app", "stable.json"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAgentCrashAtManyPoints: killing the agent at any moment and
// restarting it leaves either the old or the new release installed, never a
// mix, and the next cycle finishes the job without re-downloading verified
// chunks (beyond those in flight at the kill).
func TestAgentCrashAtManyPoints(t *testing.T) {
	c := newCLI(t)
	setupRoot(t, c, []string{"a"}, "1")
	optDir := c.path("opt")
	target := filepath.Join(optDir, "app")
	dataDir := c.path("data")
	rel1, rel2 := randomBytes(301, 3<<20), randomBytes(302, 3<<20)
	o := origintest.New(t, c.path("origin"))
	config := crashConfig(t, c, o.URL(), dataDir, optDir+"/")

	crashPublish(t, c, "1.0", target, rel1)
	c.ok("root", "publish", "--origin", "origin", "root.json")
	c.ok("agent", "--config", config, "--once")
	if n, what := crashWhich(target, rel1, rel2); n != 1 {
		t.Fatalf("after installing release 1 the target holds %s", what)
	}
	crashCopyTree(t, dataDir, c.path("template/data"))
	crashCopyTree(t, optDir, c.path("template/opt"))
	restore := func() {
		crashCopyTree(t, c.path("template/data"), dataDir)
		crashCopyTree(t, c.path("template/opt"), optDir)
	}

	crashPublish(t, c, "2.0", target, rel2)
	o.Delay(crashChunkDelay)
	o.Take()

	// One uninterrupted update gives its duration D and chunk count.
	restore()
	start := time.Now()
	a := crashStartAgent(t, c, config, "")
	if code := a.wait(t); code != 0 {
		t.Fatalf("uninterrupted update: exit %d\n%s", code, a.stderr.String())
	}
	d := time.Since(start)
	nChunks := len(o.Take().Chunks)
	if n, what := crashWhich(target, rel1, rel2); n != 2 {
		t.Fatalf("uninterrupted update left the target with %s\n%s", what, a.stderr.String())
	}
	if nChunks < 40 {
		t.Fatalf("release 2 has %d distinct chunks; the test wants 40 or more", nChunks)
	}
	t.Logf("uninterrupted update: %v, %d chunks", d.Round(time.Millisecond), nChunks)

	// Twelve kills spread over [0, 1.2 D], and four more near the end of
	// the run, where the artifact is committed, installed and recorded.
	var kills []time.Duration
	for k := range 12 {
		kills = append(kills, d*12/10*time.Duration(k)/11)
	}
	for _, pct := range []time.Duration{88, 93, 97, 100} {
		kills = append(kills, d*pct/100)
	}
	// The window between the last chunk and the end is short and timed kills
	// rarely land in it: these kill at the moment the agent logs a phase. The
	// signal lands a little later; near the end the agent may finish first.
	phases := []string{`"new release trusted"`, `"artifact verified"`, `msg=installing`,
		`"installed file"`, `msg="release installed" product=app channel=stable sequence=2 version=2 installer=file`}
	type killPoint struct {
		at     time.Duration
		killOn string
	}
	var points []killPoint
	for _, at := range kills {
		points = append(points, killPoint{at: at})
	}
	for _, p := range phases {
		points = append(points, killPoint{killOn: p})
	}
	for k, p := range points {
		t.Run(fmt.Sprintf("kill%02d", k), func(t *testing.T) {
			restore()
			o.Take()
			a := crashStartAgent(t, c, config, p.killOn)
			how := "at " + p.at.Round(time.Millisecond).String()
			if p.killOn == "" {
				kill := time.AfterFunc(p.at, func() { a.cmd.Process.Kill() })
				defer kill.Stop()
			} else {
				how = "on log " + p.killOn
			}
			code := a.wait(t)
			first := o.Take().Chunks
			n, what := crashWhich(target, rel1, rel2)
			t.Logf("kill %s: exit %d, target release %d, %d chunks requested, last log: %s",
				how, code, n, len(first), a.lastMsg())
			if n == 0 {
				t.Fatalf("after a kill %s the target holds %s; want release 1 or 2 whole\nagent log:\n%s",
					how, what, a.stderr.String())
			}
			if code != 0 && code != -1 {
				t.Fatalf("killed agent exited %d\n%s", code, a.stderr.String())
			}

			b := crashStartAgent(t, c, config, "")
			if code := b.wait(t); code != 0 {
				t.Fatalf("restarted agent: exit %d\n%s", code, b.stderr.String())
			}
			second := o.Take().Chunks
			if n, what := crashWhich(target, rel1, rel2); n != 2 {
				t.Fatalf("restarted agent left the target with %s\n%s", what, b.stderr.String())
			}
			if st := crashState(t, dataDir); !strings.Contains(st, `"installed_sequence": 2`) {
				t.Errorf("state after the restarted cycle:\n%s", st)
			}
			crashCheckRefetch(t, first, second, nChunks)
			crashCheckNoTemps(t, optDir)
		})
	}
}

// crashCheckRefetch wants every chunk fetched in one of the two runs, and
// at most origin_connections (those in flight at the kill) in both.
func crashCheckRefetch(t *testing.T, first, second map[manifest.Digest]int, nChunks int) {
	t.Helper()
	union := make(map[manifest.Digest]bool)
	var repeated []manifest.Digest
	for d := range first {
		union[d] = true
	}
	for d := range second {
		if union[d] {
			repeated = append(repeated, d)
		}
		union[d] = true
	}
	if len(union) > nChunks {
		t.Errorf("%d distinct chunks requested over both runs; the release has %d", len(union), nChunks)
	}
	if len(repeated) > crashOriginConnections {
		t.Errorf("%d chunks requested by the killed run were requested again (more than origin_connections = %d): %v",
			len(repeated), crashOriginConnections, repeated)
	}
}

// crashCheckNoTemps wants no installer temporary files left in dir.
func crashCheckNoTemps(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".fleetcast-tmp-") {
			t.Errorf("leftover temporary file %s in %s", e.Name(), dir)
		}
	}
}

// crashMountTmpfs mounts a tmpfs of size at dir, unmounted at cleanup.
func crashMountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("mount tmpfs at %s: %v\n%s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
}

func crashNeedRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("FLEETCAST_REQUIRE_NETNS") == "1" {
		t.Fatal("needs root to mount tmpfs, and FLEETCAST_REQUIRE_NETNS=1 requires it")
	}
	t.Skip("needs root to mount a small tmpfs (run as root, or set FLEETCAST_REQUIRE_NETNS=1 to make this a failure)")
}

// TestAgentFullDisk: a full disk, in the data directory or at the target,
// fails the cycle cleanly and leaves the installed file as it was.
func TestAgentFullDisk(t *testing.T) {
	crashNeedRoot(t)
	t.Run("data_dir", func(t *testing.T) {
		c := newCLI(t)
		setupRoot(t, c, []string{"a"}, "1")
		optDir := c.path("opt")
		target := filepath.Join(optDir, "app")
		dataDir := c.path("data")
		crashMountTmpfs(t, dataDir, "8m")
		rel1, rel2 := randomBytes(401, 2<<20), randomBytes(402, 12<<20)
		o := origintest.New(t, c.path("origin"))
		config := crashConfig(t, c, o.URL(), dataDir, optDir+"/")
		crashPublish(t, c, "1.0", target, rel1)
		c.ok("root", "publish", "--origin", "origin", "root.json")
		c.ok("agent", "--config", config, "--once")

		crashPublish(t, c, "2.0", target, rel2)
		r := c.run("agent", "--config", config, "--once")
		if r.code != 1 || !strings.Contains(r.stderr, "no space left on device") {
			t.Fatalf("agent on a full data_dir: exit %d; want 1 and \"no space left on device\"\n%s", r.code, r.stderr)
		}
		t.Logf("agent error: %s", crashLastLine(r.stderr))
		if !strings.Contains(r.stderr, fmt.Sprintf("reserve %d bytes", len(rel2))) {
			t.Errorf("error does not say it could not reserve %d bytes:\n%s", len(rel2), r.stderr)
		}
		if n, what := crashWhich(target, rel1, rel2); n != 1 {
			t.Fatalf("target after the failed update holds %s; want release 1", what)
		}
		if st := crashState(t, dataDir); !strings.Contains(st, `"installed_sequence": 1`) {
			t.Errorf("state after the failed update:\n%s", st)
		}
	})
	t.Run("target_dir", func(t *testing.T) {
		c := newCLI(t)
		setupRoot(t, c, []string{"a"}, "1")
		optDir := c.path("opt")
		target := filepath.Join(optDir, "app")
		crashMountTmpfs(t, optDir, "4m")
		before := randomBytes(501, 1<<20)
		if err := os.WriteFile(target, before, 0o755); err != nil {
			t.Fatal(err)
		}
		rel := randomBytes(502, 6<<20)
		o := origintest.New(t, c.path("origin"))
		config := crashConfig(t, c, o.URL(), c.path("data"), optDir+"/")
		crashPublish(t, c, "1.0", target, rel)
		c.ok("root", "publish", "--origin", "origin", "root.json")
		r := c.run("agent", "--config", config, "--once")
		if r.code != 1 || !strings.Contains(r.stderr, "no space left on device") {
			t.Fatalf("agent with a full target dir: exit %d; want 1 and \"no space left on device\"\n%s", r.code, r.stderr)
		}
		t.Logf("agent error: %s", crashLastLine(r.stderr))
		if n, what := crashWhich(target, before, rel); n != 1 {
			t.Fatalf("target after the failed install holds %s; want its previous content", what)
		}
		crashCheckNoTemps(t, optDir)
	})
}

func crashLastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
