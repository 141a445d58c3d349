//go:build unix

package installers

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/internal/testlog"
	"github.com/fleetcast/fleetcast/manifest"
)

// testOrphanTiming polls often and gives SIGTERM little time.
var testOrphanTiming = orphanTiming{poll: 10 * time.Millisecond, grace: 300 * time.Millisecond, gone: 10 * time.Second}

// waitFor polls cond until it holds, failing the test after 15 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // poll with a deadline
	}
}

// loggingScript is an argv that appends "start PID" to log, waits until
// the file release exists, and appends "end PID".
func loggingScript(t *testing.T, log, release string) []string {
	return []string{lookPath(t, "sh"), "-c",
		`echo "start $$" >> "$0"; while [ ! -e "$1" ]; do sleep 0.01; done; echo "end $$" >> "$0"`, log, release}
}

// Environment of the helper process of TestOrphanAfterCrash.
const (
	envHelperDir     = "FLEETCAST_TEST_ORPHAN_DIR"
	envHelperLog     = "FLEETCAST_TEST_ORPHAN_LOG"
	envHelperRelease = "FLEETCAST_TEST_ORPHAN_RELEASE"
)

// TestOrphanHelperProcess is the agent TestOrphanAfterCrash kills: it runs
// an install whose command waits.
func TestOrphanHelperProcess(t *testing.T) {
	dir := os.Getenv(envHelperDir)
	if dir == "" {
		t.Skip("helper process of TestOrphanAfterCrash")
	}
	rel := release(t, dir, 1, "1.0", nil, manifest.Install{Installer: "command",
		Command: loggingScript(t, os.Getenv(envHelperLog), os.Getenv(envHelperRelease))})
	Install(context.Background(), request(t, rel, nil, filepath.Join(dir, "state")))
	t.Fatal("the install ended: it was meant to be killed")
}

// TestOrphanAfterCrash kills an Install (in a subprocess, as a crashed agent)
// while its command runs; the next Install must wait for that command to
// end before it starts its own.
func TestOrphanAfterCrash(t *testing.T) {
	dir := t.TempDir()
	log, rel := filepath.Join(dir, "log"), filepath.Join(dir, "release")
	state := filepath.Join(dir, "state")
	mkdir(t, state)
	helper := exec.Command(os.Args[0], "-test.run=^TestOrphanHelperProcess$")
	helper.Env = append(os.Environ(), envHelperDir+"="+dir, envHelperLog+"="+log, envHelperRelease+"="+rel)
	helper.Stdout, helper.Stderr = t.Output(), t.Output()
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(state, commandRecordName)
	waitFor(t, "the first command to start and be recorded", func() bool {
		rec, err := readCommandRecord(record)
		return err == nil && rec.PID != 0 && strings.Contains(readFile(t, log), "start")
	})
	helper.Process.Kill()
	helper.Wait()
	first := commandPID(t, record)
	if !alive(first) {
		t.Fatalf("the command %d died with its installer", first)
	}

	var logs testlog.Buffer
	req := request(t, release(t, dir, 2, "2.0", nil, manifest.Install{Installer: "command", Command: loggingScript(t, log, rel)}), nil, state)
	req.Log = slog.New(slog.NewTextHandler(&logs, nil))
	done := make(chan error, 1)
	go func() {
		_, err := Install(context.Background(), req)
		done <- err
	}()
	t.Cleanup(func() {
		writeFile(t, rel, nil, 0o644) // let the commands end
		if done != nil {
			<-done
		}
	})
	waitFor(t, "the second install to wait or start its command", func() bool {
		return strings.Contains(logs.String(), "an earlier command still runs") || strings.Count(readFile(t, log), "start") > 1
	})
	if got := readFile(t, log); strings.Count(got, "start") != 1 {
		t.Fatalf("a second command started while the first ran:\n%s", got)
	}
	writeFile(t, rel, nil, 0o644)
	err := <-done
	done = nil
	if err != nil {
		t.Fatalf("second install: %v\n%s", err, logs.String())
	}
	t.Logf("second install's log:\n%s", logs.String())
	lines := strings.Fields(readFile(t, log))
	want := []string{"start", strconv.Itoa(first), "end", strconv.Itoa(first), "start"}
	if len(lines) != 8 || !equalPrefix(lines, want) || lines[7] != lines[5] || lines[6] != "end" {
		t.Fatalf("command log %q; want the first command's start and end, then the second's", lines)
	}
	if exists(record) {
		t.Error("command record left after the install")
	}
}

func equalPrefix(s, prefix []string) bool {
	return len(s) >= len(prefix) && strings.Join(s[:len(prefix)], " ") == strings.Join(prefix, " ")
}

// commandPID reads the pid of the record at path.
func commandPID(t *testing.T, path string) int {
	t.Helper()
	rec, err := readCommandRecord(path)
	if err != nil {
		t.Fatalf("command record: %v", err)
	}
	if rec.PID == 0 {
		t.Fatal("command record has no pid")
	}
	return rec.PID
}

// TestCommandRecorded: while a command runs, StateDir/command.json names
// it; after, it is gone. The command reads its own record.
func TestCommandRecorded(t *testing.T) {
	sh := lookPath(t, "sh")
	dir := t.TempDir()
	out, pidFile := filepath.Join(dir, "record"), filepath.Join(dir, "pid")
	record := filepath.Join(dir, commandRecordName)
	script := `until grep -q '"pid":[1-9]' "$0"; do sleep 0.01; done; cat "$0" > "$1"; echo $$ > "$2"`
	rel := release(t, dir, 1, "1.0", nil, manifest.Install{Installer: "command", Command: []string{sh, "-c", script, record, out, pidFile}})
	req := request(t, rel, nil, dir)
	req.CommandTimeout = 20 * time.Second
	if _, err := Install(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	rec, err := parseCommandRecord([]byte(readFile(t, out)))
	if err != nil {
		t.Fatalf("record seen by the command: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(readFile(t, pidFile)))
	if rec.PID != pid || rec.What != "install command" || rec.Argv[0] != sh || rec.TimeoutMS != 20000 {
		t.Errorf("record %+v; want pid %d, install command %s, 20s", rec, pid, sh)
	}
	if start, err := procStart(pid); err == nil && rec.Start != start {
		t.Errorf("recorded start %q, want %q", rec.Start, start)
	}
	if exists(record) {
		t.Error("record left after the command ended")
	}
}

// startGroup starts argv in a process group of its own, killed and reaped
// at cleanup. The test does not wait for it before: its end leaves a zombie,
// as an orphan does where init does not reap.
func startGroup(t *testing.T, argv ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	return cmd
}

// writeRecord writes a record for pid (with its start time) to dir.
func writeRecord(t *testing.T, dir string, pid int, deadline time.Time, change func(*commandRecord)) {
	t.Helper()
	rec := goodRecord()
	rec.PID, rec.Boot, rec.Deadline = pid, bootID(), deadline
	if pid != 0 {
		rec.Start, _ = procStart(pid)
	}
	if change != nil {
		change(&rec)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, commandRecordName), b, 0o600)
}

func TestAwaitOrphan(t *testing.T) {
	sh := lookPath(t, "sh")
	lookPath(t, "sleep")
	gone := exec.Command(sh, "-c", "exit 0")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	ignoreTerm := `trap "" TERM; sh -c 'trap "" TERM; sleep 60' & echo $! > "$0"; wait`
	soon, later := func() time.Time { return time.Now().Add(50 * time.Millisecond) }, func() time.Time { return time.Now().Add(time.Minute) }
	tests := []struct {
		name     string
		argv     []string // the earlier command, or nil
		record   func(t *testing.T, dir string, pid int)
		wantLog  string
		wantDead bool   // the earlier command must be dead
		wantErr  string // and the record kept
	}{
		{name: "no record"},
		{name: "unreadable", record: func(t *testing.T, dir string, _ int) {
			writeFile(t, filepath.Join(dir, commandRecordName), []byte("{"), 0o600)
		}, wantLog: "unreadable record of an earlier command"},
		{name: "not recorded", record: func(t *testing.T, dir string, _ int) { writeRecord(t, dir, 0, later(), nil) },
			wantLog: "an earlier command was being started"},
		{name: "gone", record: func(t *testing.T, dir string, _ int) { writeRecord(t, dir, gone.Process.Pid, later(), nil) },
			wantLog: "its process group is gone"},
		{name: "pid reused", argv: []string{"sleep", "60"}, record: func(t *testing.T, dir string, pid int) {
			writeRecord(t, dir, pid, soon(), func(r *commandRecord) { r.Start = "1" })
		}, wantLog: "its pid now belongs to another process"},
		{name: "other boot", argv: []string{"sleep", "60"}, record: func(t *testing.T, dir string, pid int) {
			writeRecord(t, dir, pid, soon(), func(r *commandRecord) { r.Boot = "another boot" })
		}, wantLog: "it ran before the machine restarted"},
		{name: "this process", record: func(t *testing.T, dir string, _ int) { writeRecord(t, dir, syscall.Getpgrp(), soon(), nil) },
			wantLog: "its pid now belongs to another process"},
		{name: "exits on SIGTERM", argv: []string{"sleep", "60"}, record: func(t *testing.T, dir string, pid int) { writeRecord(t, dir, pid, soon(), nil) },
			wantLog: "killed earlier command", wantDead: true},
		{name: "ignores SIGTERM", argv: []string{sh, "-c", ignoreTerm, "/dev/null"}, record: func(t *testing.T, dir string, pid int) {
			writeRecord(t, dir, pid, soon(), nil)
		}, wantLog: "force=true", wantDead: true},
		{name: "recorded timeout bounds the wait", argv: []string{"sleep", "60"}, record: func(t *testing.T, dir string, pid int) {
			writeRecord(t, dir, pid, time.Now().Add(time.Hour), func(r *commandRecord) { r.TimeoutMS = 50 })
		}, wantLog: "killed earlier command", wantDead: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var logs testlog.Buffer
			r := &run{req: &Request{StateDir: dir}, log: slog.New(slog.NewTextHandler(&logs, nil)), result: &Result{}}
			pid := 0
			if tc.argv != nil {
				pid = startGroup(t, tc.argv...).Process.Pid
			}
			if tc.record != nil {
				tc.record(t, dir, pid)
			}
			err := r.awaitOrphanWith(context.Background(), testOrphanTiming)
			if err != nil {
				t.Fatalf("awaitOrphan: %v\n%s", err, logs.String())
			}
			if !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log lacks %q:\n%s", tc.wantLog, logs.String())
			}
			if exists(filepath.Join(dir, commandRecordName)) {
				t.Error("record kept")
			}
			if pid != 0 && tc.wantDead == groupAlive(pid) {
				t.Errorf("earlier command alive %v, want %v", groupAlive(pid), !tc.wantDead)
			}
			t.Logf("log:\n%s", logs.String())
		})
	}
}

// TestAwaitOrphanWaits: an earlier command that ends before its deadline is
// waited for, not killed; cancelling the wait keeps the record.
func TestAwaitOrphanWaits(t *testing.T) {
	dir := t.TempDir()
	log, rel := filepath.Join(dir, "log"), filepath.Join(dir, "release")
	cmd := startGroup(t, loggingScript(t, log, rel)...)
	waitFor(t, "the earlier command to start", func() bool { return strings.Contains(readFile(t, log), "start") })
	writeRecord(t, dir, cmd.Process.Pid, time.Now().Add(time.Minute), nil)
	var logs testlog.Buffer
	r := &run{req: &Request{StateDir: dir}, log: slog.New(slog.NewTextHandler(&logs, nil)), result: &Result{}}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.awaitOrphanWith(ctx, testOrphanTiming); !errors.Is(err, context.Canceled) {
		t.Fatalf("awaitOrphan with a cancelled context: %v", err)
	}
	if !exists(filepath.Join(dir, commandRecordName)) || !groupAlive(cmd.Process.Pid) {
		t.Fatal("a cancelled wait removed the record or killed the command")
	}

	done := make(chan error, 1)
	go func() { done <- r.awaitOrphanWith(context.Background(), testOrphanTiming) }()
	waitFor(t, "awaitOrphan to wait", func() bool { return strings.Count(logs.String(), "an earlier command still runs") == 2 })
	writeFile(t, rel, nil, 0o644)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, log); !strings.Contains(got, "end") || strings.Contains(logs.String(), "killing") {
		t.Fatalf("the earlier command did not end by itself: log %q\n%s", got, logs.String())
	}
	if len(r.result.Steps) != 1 || !strings.HasPrefix(r.result.Steps[0], "earlier command ended") {
		t.Errorf("steps %q", r.result.Steps)
	}
}
