package agent

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/agent/config"
	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/agent/store"
	"github.com/fleetcast/fleetcast/installers"
	"github.com/fleetcast/fleetcast/internal/origintest"
	"github.com/fleetcast/fleetcast/internal/releasetest"
	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/signing"

	dto "github.com/prometheus/client_model/go"
)

// How a cycle ends when the installer fails, and what the operator is told:
// whether, and when, the release is tried again.

// logRecord is one record a captureLog kept, its attributes as text.
type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

// captureLog is a slog.Handler that keeps every record. Safe for
// concurrent use.
type captureLog struct {
	mu    *sync.Mutex
	recs  *[]logRecord
	attrs []slog.Attr
}

func newCaptureLog() *captureLog { return &captureLog{mu: new(sync.Mutex), recs: new([]logRecord)} }

func (h *captureLog) Enabled(context.Context, slog.Level) bool { return true }

func (h *captureLog) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: make(map[string]string)}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.recs = append(*h.recs, rec)
	return nil
}

func (h *captureLog) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *captureLog) WithGroup(string) slog.Handler { return h }

// take returns the records kept since the last take, and forgets them.
func (h *captureLog) take() []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	recs := *h.recs
	*h.recs = nil
	return recs
}

// withMessage returns the records whose message contains msg.
func withMessage(recs []logRecord, msg string) []logRecord {
	var out []logRecord
	for _, r := range recs {
		if strings.Contains(r.msg, msg) {
			out = append(out, r)
		}
	}
	return out
}

// capture makes the agent log to a new captureLog.
func (c *clockAgent) capture() *captureLog {
	h := newCaptureLog()
	c.log = slog.New(h)
	return h
}

// stubInstaller replaces runInstaller until the test ends: each call
// returns the next of errs that is not nil, else runs the real installer.
type stubInstaller struct {
	mu    sync.Mutex
	errs  []error
	calls int
}

func newStubInstaller(t *testing.T, errs ...error) *stubInstaller {
	s := &stubInstaller{errs: errs}
	old := runInstaller
	runInstaller = s.install
	t.Cleanup(func() { runInstaller = old })
	return s
}

func (s *stubInstaller) install(ctx context.Context, req *installers.Request) (*installers.Result, error) {
	s.mu.Lock()
	s.calls++
	var err error
	if len(s.errs) > 0 {
		err, s.errs = s.errs[0], s.errs[1:]
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return installers.Install(ctx, req)
}

func (s *stubInstaller) called() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// TestClassifyInstall: a verdict on the release wins over what else the
// error wraps; an unsafe target is no verdict.
func TestClassifyInstall(t *testing.T) {
	step := func(err error) error { return &installers.Error{Step: "install", Err: err} }
	for _, tc := range []struct {
		name string
		err  error
		want installFailure
	}{
		{"health check", &installers.Error{Step: "health-check", RolledBack: true, Err: installers.ErrHealthCheck}, failedHealth},
		{"unsafe archive", step(fmt.Errorf("%w: entry \"../x\"", installers.ErrUnsafeArchive)), failedRefused},
		{"no space", step(fmt.Errorf("write x: %w", installers.ErrNoSpace)), failedNoSpace},
		{"unsafe target", step(fmt.Errorf("%w: /opt/app/releases is a symlink", installers.ErrUnsafeTarget)), failedUnsafeTarget},
		{"other", step(errors.New("exit status 1")), failedOther},
		{"health check and no space", errors.Join(installers.ErrNoSpace, installers.ErrHealthCheck), failedHealth},
		{"unsafe archive and target", errors.Join(installers.ErrUnsafeTarget, installers.ErrUnsafeArchive), failedRefused},
		{"no space and unsafe target", errors.Join(installers.ErrUnsafeTarget, installers.ErrNoSpace), failedNoSpace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := classifyInstall(tc.err); got != tc.want {
				t.Errorf("classifyInstall(%v) = %d; want %d", tc.err, got, tc.want)
			}
		})
	}
}

// tarGz is a gzipped tar of regular files, in the order given.
func tarGz(t *testing.T, files ...tarFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.body)), ModTime: time.Unix(1e9, 0)}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tarFile is a regular file in a tarGz.
type tarFile struct {
	name string
	body []byte
}

// publishData publishes data as release version of app/stable into the
// origin directory dir, valid for an hour.
func publishData(t *testing.T, dir string, key *signing.PrivateKey, root, data []byte, version string, now time.Time, in manifest.Install) *manifest.Manifest {
	t.Helper()
	return publishApp(t, dir, key, root, data, version, in, now, time.Hour)
}

// TestRefusedIsNotHealthFailed: a release its installer refuses (an unsafe
// archive) ends as "refused", not "health-failed"; the error says that
// nothing was switched and that it is not tried again; the next cycle
// waits for a newer one, as after a failed health check.
func TestRefusedIsNotHealthFailed(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("uses /bin/sh and the archive installer")
	}
	for _, tc := range []struct {
		name     string
		data     func(t *testing.T) []byte
		install  func(target string) manifest.Install
		want     peerproto.Outcome
		wantIs   error
		wantMsg  string
		wantNot  string
		wantLogs string
	}{
		{"unsafe archive",
			func(t *testing.T) []byte {
				return tarGz(t, tarFile{"bin/app", []byte("app")}, tarFile{"../evil", []byte("evil")})
			},
			func(target string) manifest.Install { return manifest.Install{Installer: "archive", Target: target} },
			peerproto.Refused, installers.ErrUnsafeArchive, "refused by its installer, nothing was switched", "(not rolled back)",
			"not tried again until a newer sequence"},
		{"health check failed",
			func(t *testing.T) []byte { return []byte("app") },
			func(target string) manifest.Install {
				return manifest.Install{Installer: "file", Target: target, Mode: "0644", HealthCheck: []string{"/bin/sh", "-c", "exit 3"}}
			},
			peerproto.HealthFailed, installers.ErrHealthCheck, "it will not be tried again", "refused", "not tried again"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := origintest.New(t, t.TempDir())
			key := liveKey(t)
			now := time.Now()
			root := signedRoot(t, key, now.Add(24*time.Hour))
			dir := t.TempDir()
			target := filepath.Join(dir, "app")
			publishData(t, o.Dir(), key, root, tc.data(t), "1.0", now, tc.install(target))
			a := newClockAgent(t, o.URL(), root, dir, now, func(c *config.Config) { c.AllowedInstallers = []string{"file", "archive", "command"} })
			logs := a.capture()
			st, err := a.once(t)
			if st.LastOutcome != tc.want || !errors.Is(err, tc.wantIs) {
				t.Fatalf("outcome %q, error %v; want %q wrapping %v", st.LastOutcome, err, tc.want, tc.wantIs)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.wantMsg) || strings.Contains(msg, tc.wantNot) {
				t.Errorf("error %q; want it to contain %q and not %q", msg, tc.wantMsg, tc.wantNot)
			}
			if len(withMessage(logs.take(), tc.wantLogs)) != 1 {
				t.Errorf("no log line saying %q", tc.wantLogs)
			}
			if s := a.state(t); s.Failed != 1 || s.Installed != 0 {
				t.Errorf("state %+v; want sequence 1 failed, none installed", s)
			}
			if _, err := os.Lstat(filepath.Join(dir, "evil")); err == nil {
				t.Errorf("the archive wrote outside its release directory")
			}
			o.SetETag(`"other"`) // a full response, not a 304: the manifest is judged again
			if st, err := a.once(t); st.LastOutcome != peerproto.KnownBad || err != nil {
				t.Errorf("second cycle: outcome %q, error %v; want %q", st.LastOutcome, err, peerproto.KnownBad)
			}
			if len(withMessage(logs.take(), "not tried again: waiting for a newer one")) != 1 {
				t.Errorf("second cycle: no log line saying the release is not tried again")
			}
			mf := gathered(t, a.Agent)
			for _, out := range []peerproto.Outcome{tc.want, peerproto.KnownBad} {
				labels := map[string]string{"product": "app", "channel": "stable", "outcome": string(out)}
				if got := metricValue(t, mf, "fleetcast_agent_updates_total", labels); got != 1 {
					t.Errorf("updates_total%v = %v; want 1", labels, got)
				}
			}
		})
	}
}

// gathered reads the agent's registry as GET /metrics would serve it.
func gathered(t *testing.T, a *Agent) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := a.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]*dto.MetricFamily)
	for _, f := range mfs {
		out[f.GetName()] = f
	}
	return out
}

// TestUnsafeTargetRetried: an installer that finds the target tampered
// with fails the cycle, says what to repair, and the same release is tried
// again every cycle (it is not marked failed); once repaired, it installs.
func TestUnsafeTargetRetried(t *testing.T) {
	o := origintest.New(t, t.TempDir())
	key := liveKey(t)
	now := time.Now()
	root := signedRoot(t, key, now.Add(24*time.Hour))
	dir := t.TempDir()
	target := filepath.Join(dir, "app")
	publishData(t, o.Dir(), key, root, []byte("app"), "1.0", now, manifest.Install{Installer: "file", Target: target, Mode: "0644"})
	a := newClockAgent(t, o.URL(), root, dir, now, nil)
	logs := a.capture()
	unsafe := &installers.Error{Step: "install", Err: fmt.Errorf("%w: %s is a symlink to /etc", installers.ErrUnsafeTarget, target)}
	stub := newStubInstaller(t, unsafe, unsafe)
	for cycle := 1; cycle <= 2; cycle++ {
		st, err := a.once(t)
		if st.LastOutcome != peerproto.Failed || !errors.Is(err, installers.ErrUnsafeTarget) {
			t.Fatalf("cycle %d: outcome %q, error %v; want %q wrapping ErrUnsafeTarget", cycle, st.LastOutcome, err, peerproto.Failed)
		}
		msg := err.Error()
		for _, want := range []string{target + " is a symlink to /etc", "not a verdict on the release", "tried again every cycle"} {
			if !strings.Contains(msg, want) {
				t.Errorf("cycle %d: error %q; want it to contain %q", cycle, msg, want)
			}
		}
		if strings.Contains(msg, "(not rolled back)") {
			t.Errorf("cycle %d: error %q says \"not rolled back\", though nothing was switched", cycle, msg)
		}
		recs := withMessage(logs.take(), "repair the path")
		if len(recs) != 1 || recs[0].level != slog.LevelError || recs[0].attrs["target"] != target {
			t.Errorf("cycle %d: log lines telling what to repair: %+v; want one at ERROR naming the target", cycle, recs)
		}
		if s := a.state(t); s.Failed != 0 || s.Installed != 0 || s.RetrySequence != 0 {
			t.Errorf("cycle %d: state %+v; want nothing failed, installed or backed off", cycle, s)
		}
		if stub.called() != cycle {
			t.Errorf("cycle %d: installer called %d times; want %d", cycle, stub.called(), cycle)
		}
	}
	if st, err := a.once(t); st.LastOutcome != peerproto.Updated || err != nil {
		t.Fatalf("cycle after the repair: outcome %q, error %v; want %q", st.LastOutcome, err, peerproto.Updated)
	}
}

// TestNoSpaceBackoff: the wait after each attempt that did not fit.
func TestNoSpaceBackoff(t *testing.T) {
	for _, tc := range []struct {
		poll     time.Duration
		attempts int
		want     time.Duration
	}{
		{5 * time.Minute, 1, 5 * time.Minute},
		{5 * time.Minute, 2, 10 * time.Minute},
		{5 * time.Minute, 3, 20 * time.Minute},
		{5 * time.Minute, 7, 5 * time.Minute << 6},
		{5 * time.Minute, 8, store.MaxNoSpaceBackoff},
		{5 * time.Minute, 1 << 30, store.MaxNoSpaceBackoff},
		{time.Second, 1, store.MinNoSpaceBackoff},
		{time.Second, 2, 2 * store.MinNoSpaceBackoff},
		{8 * time.Hour, 1, 8 * time.Hour},
		{8 * time.Hour, 5, 8 * time.Hour},
		{5 * time.Minute, 0, 5 * time.Minute},
		{5 * time.Minute, -3, 5 * time.Minute},
	} {
		if got := store.NoSpaceBackoff(tc.poll, tc.attempts); got != tc.want {
			t.Errorf("noSpaceBackoff(%v, %d) = %v; want %v", tc.poll, tc.attempts, got, tc.want)
		}
	}
}

// TestNoSpaceState: the backoff doubles for one sequence, starts afresh for
// another, and ends at retry_after.
func TestNoSpaceState(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var st store.State
	for i, step := range []struct {
		seq       uint64
		at        time.Time
		wantCount int
		wantAfter time.Time
	}{
		{4, now, 1, now.Add(5 * time.Minute)},
		{4, now.Add(6 * time.Minute), 2, now.Add(16 * time.Minute)},
		{4, now.Add(17 * time.Minute), 3, now.Add(37 * time.Minute)},
		{5, now.Add(18 * time.Minute), 1, now.Add(23 * time.Minute)},
	} {
		st.NoSpace(step.seq, "full", step.at, 5*time.Minute)
		if st.RetrySequence != step.seq || st.RetryCount != step.wantCount || !st.RetryAfter.Equal(step.wantAfter) || st.RetryReason != "full" {
			t.Fatalf("step %d: %+v; want sequence %d, count %d, after %v", i, st, step.seq, step.wantCount, step.wantAfter)
		}
	}
	after := st.RetryAfter
	for _, tc := range []struct {
		seq  uint64
		at   time.Time
		want bool
	}{
		{5, after.Add(-time.Nanosecond), true},
		{5, after, false},
		{4, after.Add(-time.Minute), false},
		{6, after.Add(-time.Minute), false},
	} {
		if got := st.Waiting(tc.seq, tc.at); got != tc.want {
			t.Errorf("waiting(%d, retry_after%+v) = %v; want %v", tc.seq, tc.at.Sub(after), got, tc.want)
		}
	}
	st.ClearRetry()
	if st != (store.State{}) {
		t.Errorf("after clearRetry: %+v", st)
	}
}

// TestNoSpaceDeferred: a release that did not fit is not tried again
// before retry_after, restarts included; the deferred cycles say what they
// wait for, until when; the wait doubles; an install ends it.
func TestNoSpaceDeferred(t *testing.T) {
	o := origintest.New(t, t.TempDir())
	key := liveKey(t)
	now := time.Now().UTC()
	root := signedRoot(t, key, now.Add(24*time.Hour))
	dir := t.TempDir()
	target := filepath.Join(dir, "app")
	publishData(t, o.Dir(), key, root, []byte("app"), "1.0", now, manifest.Install{Installer: "file", Target: target, Mode: "0644"})
	full := &installers.Error{Step: "install", Err: fmt.Errorf("write %s: %w (1 MiB free)", target, installers.ErrNoSpace)}
	stub := newStubInstaller(t, full, full)
	a := newClockAgent(t, o.URL(), root, dir, now, nil)
	poll := a.cfg.PollInterval

	st, err := a.once(t)
	if st.LastOutcome != peerproto.Failed || !errors.Is(err, installers.ErrNoSpace) || !strings.Contains(err.Error(), "attempt 1, not tried again before") {
		t.Fatalf("first cycle: outcome %q, error %v; want %q wrapping ErrNoSpace, saying when it is tried again", st.LastOutcome, err, peerproto.Failed)
	}
	s := a.state(t)
	if s.RetrySequence != 1 || s.RetryCount != 1 || !s.RetryAfter.Equal(now.Add(poll)) || !strings.Contains(s.RetryReason, "1 MiB free") {
		t.Fatalf("state %+v; want sequence 1 backed off once until now+%v", s, poll)
	}

	// A deferred cycle, and one after a restart: no install.
	a = restartClockAgent(t, a)
	for _, at := range []time.Time{now, now.Add(poll - time.Second)} {
		a.set(at)
		logs := a.capture()
		st, err := a.once(t)
		if st.LastOutcome != peerproto.Deferred || !errors.Is(err, installers.ErrNoSpace) {
			t.Fatalf("at +%v: outcome %q, error %v; want %q", at.Sub(now), st.LastOutcome, err, peerproto.Deferred)
		}
		for _, want := range []string{"not tried again before " + s.RetryAfter.Format(time.RFC3339), "attempts so far: 1", "1 MiB free"} {
			if !strings.Contains(st.LastError, want) {
				t.Errorf("at +%v: status last_error %q; want it to contain %q", at.Sub(now), st.LastError, want)
			}
		}
		recs := withMessage(logs.take(), "waiting before retrying")
		if len(recs) != 1 || recs[0].level != slog.LevelInfo || recs[0].attrs["retry_after"] != s.RetryAfter.String() {
			t.Errorf("at +%v: waiting log lines %+v; want one at INFO with retry_after %v", at.Sub(now), recs, s.RetryAfter)
		}
		if stub.called() != 1 {
			t.Fatalf("at +%v: installer called %d times; want 1", at.Sub(now), stub.called())
		}
	}

	// Past retry_after: tried again, fails again, waits twice as long.
	a.set(now.Add(poll))
	if st, err := a.once(t); st.LastOutcome != peerproto.Failed || !errors.Is(err, installers.ErrNoSpace) || stub.called() != 2 {
		t.Fatalf("at retry_after: outcome %q, error %v, %d installs; want %q after a second install", st.LastOutcome, err, stub.called(), peerproto.Failed)
	}
	if s := a.state(t); s.RetryCount != 2 || !s.RetryAfter.Equal(now.Add(3*poll)) {
		t.Fatalf("state %+v; want 2 attempts, retry_after now+%v", s, 3*poll)
	}
	a.set(now.Add(3 * poll))
	if st, err := a.once(t); st.LastOutcome != peerproto.Updated || err != nil {
		t.Fatalf("third attempt: outcome %q, error %v; want %q", st.LastOutcome, err, peerproto.Updated)
	}
	if s := a.state(t); s.RetrySequence != 0 || s.RetryCount != 0 || !s.RetryAfter.IsZero() || s.RetryReason != "" || s.Installed != 1 {
		t.Errorf("state %+v; want sequence 1 installed, no backoff", s)
	}
}

// TestNoSpaceNewerSequence: a newer sequence is not held back by the
// backoff of one that did not fit.
func TestNoSpaceNewerSequence(t *testing.T) {
	o := origintest.New(t, t.TempDir())
	key := liveKey(t)
	now := time.Now().UTC()
	root := signedRoot(t, key, now.Add(24*time.Hour))
	dir := t.TempDir()
	in := manifest.Install{Installer: "file", Target: filepath.Join(dir, "app"), Mode: "0644"}
	publishData(t, o.Dir(), key, root, bytes.Repeat([]byte("big"), 1000), "1.0", now, in)
	stub := newStubInstaller(t, &installers.Error{Step: "install", Err: installers.ErrNoSpace})
	a := newClockAgent(t, o.URL(), root, dir, now, nil)
	if st, err := a.once(t); st.LastOutcome != peerproto.Failed || !errors.Is(err, installers.ErrNoSpace) {
		t.Fatalf("first cycle: outcome %q, error %v", st.LastOutcome, err)
	}
	publishData(t, o.Dir(), key, root, []byte("small"), "1.1", now, in)
	if st, err := a.once(t); st.LastOutcome != peerproto.Updated || err != nil || stub.called() != 2 {
		t.Fatalf("cycle with sequence 2: outcome %q, error %v, %d installs; want %q", st.LastOutcome, err, stub.called(), peerproto.Updated)
	}
	if s := a.state(t); s.Installed != 2 || s.RetrySequence != 0 || s.RetryCount != 0 || !s.RetryAfter.IsZero() {
		t.Errorf("state %+v; want sequence 2 installed, no backoff", s)
	}
}

// restartClockAgent closes a and starts another agent on its data
// directory and configuration, its clock where a's was.
func restartClockAgent(t *testing.T, a *clockAgent) *clockAgent {
	t.Helper()
	cfg := *a.cfg
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	n, err := New(&cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	c := &clockAgent{Agent: n, frozen: a.frozen}
	n.clock = c.frozen
	return c
}

// TestInstalledSequenceOtherRelease: a verified manifest with the installed
// sequence that names another release is ignored, with a warning that says
// so; one signed again for the same release is simply up to date.
func TestInstalledSequenceOtherRelease(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(m *manifest.Manifest)
		differs string // "": up to date, no warning
	}{
		{"other version", func(m *manifest.Manifest) { m.Version = "1.0-evil" }, "version"},
		{"other artifact", func(m *manifest.Manifest) { m.Artifact.SHA256[0] ^= 1 }, "artifact"},
		{"other install", func(m *manifest.Manifest) { m.Install.Mode = "0755" }, "install"},
		{"signed again", func(m *manifest.Manifest) { m.Expires = m.Expires.Add(time.Hour) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := origintest.New(t, t.TempDir())
			key := liveKey(t)
			now := time.Now()
			root := signedRoot(t, key, now.Add(24*time.Hour))
			dir := t.TempDir()
			publishData(t, o.Dir(), key, root, []byte("app"), "1.0", now, manifest.Install{Installer: "file", Target: filepath.Join(dir, "app"), Mode: "0644"})
			a := newClockAgent(t, o.URL(), root, dir, now, nil)
			if st, err := a.once(t); st.LastOutcome != peerproto.Updated || err != nil {
				t.Fatalf("first cycle: %q, %v", st.LastOutcome, err)
			}
			resign(t, filepath.Join(o.Dir(), filepath.FromSlash(manifest.LatestPath("app", "stable"))), key, tc.change)
			logs := a.capture()
			if st, err := a.once(t); st.LastOutcome != peerproto.UpToDate || err != nil {
				t.Fatalf("cycle with the other manifest: %q, %v; want %q", st.LastOutcome, err, peerproto.UpToDate)
			}
			recs := logs.take()
			warned := withMessage(recs, "a sequence is installed once: ignored")
			upToDate := withMessage(recs, "up to date")
			if tc.differs == "" {
				if len(warned) != 0 || len(upToDate) != 1 {
					t.Errorf("warnings %+v, up-to-date lines %d; want none, 1", warned, len(upToDate))
				}
			} else if len(warned) != 1 || warned[0].level != slog.LevelWarn || warned[0].attrs["differs"] != tc.differs ||
				warned[0].attrs["installed_version"] != "1.0" || len(upToDate) != 0 {
				t.Errorf("warnings %+v, up-to-date lines %d; want one warning at WARN, differs=%s, installed_version=1.0, and no \"up to date\"",
					warned, len(upToDate), tc.differs)
			}
			if s := a.state(t); s.Installed != 1 || s.InstalledVersion != "1.0" {
				t.Errorf("state %+v; want 1.0 still installed", s)
			}
		})
	}
}

// resign rewrites the manifest envelope at path, changed by change, signed
// by key.
func resign(t *testing.T, path string, key *signing.PrivateKey, change func(*manifest.Manifest)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env, err := signing.ParseEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Decode(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	change(m)
	payload, err := manifest.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	next := signing.NewEnvelope(manifest.PayloadType, payload)
	next.Sign(key)
	if err := os.WriteFile(path, next.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestNoSpaceOnFullTarget installs an archive that does not fit on a 2 MiB
// tmpfs: the attempt fails with ErrNoSpace and backs off, the next cycle
// waits, and once the file system is larger the release installs. Needs
// root (mount); skipped otherwise, unless FLEETCAST_REQUIRE_NETNS=1.
func TestNoSpaceOnFullTarget(t *testing.T) {
	dir := smallTmpfs(t, "2m")
	o := origintest.New(t, t.TempDir())
	key := liveKey(t)
	now := time.Now().UTC()
	root := signedRoot(t, key, now.Add(24*time.Hour))
	target := filepath.Join(dir, "app")
	data := tarGz(t, tarFile{"bin/app", releasetest.Data(11, 3<<20)})
	publishData(t, o.Dir(), key, root, data, "1.0", now, manifest.Install{Installer: "archive", Target: target})
	a := newClockAgent(t, o.URL(), root, dir, now, nil)
	st, err := a.once(t)
	if st.LastOutcome != peerproto.Failed || !errors.Is(err, installers.ErrNoSpace) {
		t.Fatalf("first cycle: outcome %q, error %v; want %q wrapping ErrNoSpace", st.LastOutcome, err, peerproto.Failed)
	}
	if s := a.state(t); s.RetrySequence != 1 || s.RetryCount != 1 || !s.RetryAfter.Equal(now.Add(a.cfg.PollInterval)) {
		t.Fatalf("state %+v; want sequence 1 backed off until now+%v", s, a.cfg.PollInterval)
	}
	if st, err := a.once(t); st.LastOutcome != peerproto.Deferred || !errors.Is(err, installers.ErrNoSpace) {
		t.Fatalf("second cycle: outcome %q, error %v; want %q", st.LastOutcome, err, peerproto.Deferred)
	}
	mount(t, "-o", "remount,size=16m", dir)
	a.set(now.Add(a.cfg.PollInterval))
	if st, err := a.once(t); st.LastOutcome != peerproto.Updated || err != nil {
		t.Fatalf("after enlarging the file system: outcome %q, error %v; want %q", st.LastOutcome, err, peerproto.Updated)
	}
}

// smallTmpfs mounts a tmpfs of size on a new directory until the test ends.
func smallTmpfs(t *testing.T, size string) string {
	t.Helper()
	why := ""
	if runtime.GOOS != "linux" {
		why = "tmpfs is Linux only"
	} else if os.Geteuid() != 0 {
		why = "mounting a tmpfs needs root"
	}
	dir := t.TempDir()
	if why == "" {
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "fleetcast-test", dir).CombinedOutput(); err != nil {
			why = fmt.Sprintf("mount a tmpfs: %v: %s", err, out)
		}
	}
	if why != "" {
		if os.Getenv("FLEETCAST_REQUIRE_NETNS") == "1" {
			t.Fatalf("%s, and FLEETCAST_REQUIRE_NETNS=1", why)
		}
		t.Skipf("skipping: %s (set FLEETCAST_REQUIRE_NETNS=1 to fail instead)", why)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func mount(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		t.Fatalf("mount %q: %v: %s", args, err, out)
	}
}

// TestUnsafeTargetArchive: the archive installer finds its releases
// directory replaced by a symlink that leads outside the allowed targets;
// the cycle fails naming it, the release is tried again next cycle, and it
// installs once the symlink is removed.
func TestUnsafeTargetArchive(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks")
	}
	o := origintest.New(t, t.TempDir())
	key := liveKey(t)
	now := time.Now()
	root := signedRoot(t, key, now.Add(24*time.Hour))
	dir, outside := t.TempDir(), t.TempDir()
	target := filepath.Join(dir, "app")
	publishData(t, o.Dir(), key, root, tarGz(t, tarFile{"bin/app", []byte("app")}), "1.0", now, manifest.Install{Installer: "archive", Target: target})
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	releases := filepath.Join(target, "releases")
	if err := os.Symlink(outside, releases); err != nil {
		t.Fatal(err)
	}
	a := newClockAgent(t, o.URL(), root, dir, now, nil)
	for cycle := 1; cycle <= 2; cycle++ {
		st, err := a.once(t)
		if st.LastOutcome != peerproto.Failed || !errors.Is(err, installers.ErrUnsafeTarget) || !strings.Contains(err.Error(), "tried again every cycle") {
			t.Fatalf("cycle %d: outcome %q, error %v; want %q wrapping ErrUnsafeTarget", cycle, st.LastOutcome, err, peerproto.Failed)
		}
		if s := a.state(t); s.Failed != 0 || s.RetrySequence != 0 {
			t.Errorf("cycle %d: state %+v; want the release neither failed nor backed off", cycle, s)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("the installer wrote through the symlink: %d entries outside", len(entries))
	}
	if err := os.Remove(releases); err != nil {
		t.Fatal(err)
	}
	if st, err := a.once(t); st.LastOutcome != peerproto.Updated || err != nil {
		t.Fatalf("cycle after the repair: outcome %q, error %v; want %q", st.LastOutcome, err, peerproto.Updated)
	}
}
