//go:build unix

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/internal/testlog"
)

// The agent killed with SIGKILL during an install command, or a health
// check, leaves that command running; the restarted agent must wait for it
// (or kill it past its deadline) before it installs again
// (docs/INSTALLERS.md, "Commands and crashes").

// orphanScript appends "start PID" to the log $1, waits until the file $2
// exists, writes $3 (the version) to $4 and appends "end PID".
const orphanScript = `echo "start $$" >> "$1"
while [ ! -e "$2" ]; do sleep 0.02; done
[ -z "$4" ] || echo "$3" > "$4"
echo "end $$" >> "$1"
`

// orphanAgent is one "agent --once" process.
type orphanAgent struct {
	cmd  *exec.Cmd
	log  testlog.Buffer
	done chan error
}

func orphanStart(t *testing.T, e *agentEnv) *orphanAgent {
	t.Helper()
	a := &orphanAgent{done: make(chan error, 1)}
	a.cmd = exec.Command(fleetcastBin, "agent", "--config", e.config, "--once")
	a.cmd.Dir, a.cmd.Env = e.dir, filteredEnv()
	a.cmd.Stdout, a.cmd.Stderr = &a.log, &a.log
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.done <- a.cmd.Wait() }()
	t.Cleanup(func() {
		a.cmd.Process.Kill()
		<-a.done
	})
	return a
}

// orphanWait polls cond until it holds, failing after 30 seconds.
func orphanWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // poll with a deadline
	}
}

// orphanSetup is an agent env whose commands run orphanScript, logging to
// log, gated by gate.
type orphanSetup struct {
	*agentEnv
	script, log, gate string
}

func newOrphanSetup(t *testing.T) *orphanSetup {
	e := newAgentEnv(t)
	s := &orphanSetup{agentEnv: e, script: e.path("cmd.sh"), log: e.path("cmd.log"), gate: e.path("gate")}
	e.write("cmd.sh", []byte(orphanScript))
	t.Cleanup(func() { // let orphans end before the directory is removed
		os.WriteFile(s.gate, nil, 0o644)
		orphanWait(t, "the commands to end", func() bool {
			log, _ := os.ReadFile(s.log)
			return bytes.Count(log, []byte("start")) == bytes.Count(log, []byte("end"))
		})
	})
	return s
}

// publish publishes the next version with installer flags.
func (s *orphanSetup) publish(flags ...string) {
	s.t.Helper()
	s.seq++
	name := fmt.Sprintf("release-%d.bin", s.seq)
	s.write(name, randomBytes(uint64(700+s.seq), 4096))
	args := []string{"publish", "--origin", "origin", "--root", "root.json", "--key", "a.key",
		"--product", e2eProduct, "--channel", e2eChannel, "--version", fmt.Sprintf("1.%d", s.seq)}
	s.ok(append(append(args, flags...), name)...)
}

// starts counts the commands started so far.
func (s *orphanSetup) starts() int {
	log, _ := os.ReadFile(s.log)
	return bytes.Count(log, []byte("start"))
}

var recordedPID = regexp.MustCompile(`"pid":[1-9]`)

// killDuringCommand starts an agent, waits until its command started and
// was recorded, and kills the agent with SIGKILL.
func (s *orphanSetup) killDuringCommand() {
	s.t.Helper()
	starts := s.starts()
	a := orphanStart(s.t, s.agentEnv)
	record := s.path(filepath.Join("data", "installer", e2eProduct, e2eChannel, "command.json"))
	orphanWait(s.t, "the command to start", func() bool {
		b, _ := os.ReadFile(record)
		return recordedPID.Match(b) && s.starts() == starts+1
	})
	if err := a.cmd.Process.Kill(); err != nil {
		s.t.Fatal(err)
	}
	<-a.done
	a.done <- nil
	s.t.Logf("killed agent's log:\n%s", a.log.String())
}

// checkLog wants the command log to show each start followed by its end.
func (s *orphanSetup) checkLog(wantRuns int) {
	s.t.Helper()
	b, _ := os.ReadFile(s.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := 0; i < len(lines); i += 2 {
		start, end := lines[i], ""
		if i+1 < len(lines) {
			end = lines[i+1]
		}
		if !strings.HasPrefix(start, "start ") || end != "end "+strings.TrimPrefix(start, "start ") {
			s.t.Fatalf("commands overlapped or did not end: log line %d is %q, then %q; want a start and its end\n%s", i+1, start, end, b)
		}
	}
	if len(lines) != 2*wantRuns {
		s.t.Fatalf("command log has %d lines, want %d runs:\n%s", len(lines), wantRuns, b)
	}
}

// finish opens the gate, waits for the restarted agent and checks it
// installed sequence seq.
func (s *orphanSetup) finish(a *orphanAgent, seq uint64) {
	s.t.Helper()
	s.write("gate", nil)
	if err := <-a.done; err != nil {
		s.t.Fatalf("restarted agent: %v\n%s", err, a.log.String())
	}
	a.done <- nil
	s.t.Logf("restarted agent's log:\n%s", a.log.String())
	if st := s.state(); st.Installed != seq {
		s.t.Fatalf("installed sequence %d, want %d\n%s", st.Installed, seq, a.log.String())
	}
}

// waitOrOverlap waits until the restarted agent says it waits for the
// earlier command, or a second command started (and fails).
func (s *orphanSetup) waitOrOverlap(a *orphanAgent) {
	s.t.Helper()
	starts := s.starts()
	orphanWait(s.t, "the restarted agent to wait for the earlier command", func() bool {
		return strings.Contains(a.log.String(), "an earlier command still runs") || s.starts() > starts
	})
	if s.starts() > starts {
		b, _ := os.ReadFile(s.log)
		s.t.Fatalf("the restarted agent ran a command while the earlier one ran:\n%s\nagent log:\n%s", b, a.log.String())
	}
}

// TestAgentOrphanInstallCommand kills the agent during an install command;
// the restarted agent waits for that command before running its own.
func TestAgentOrphanInstallCommand(t *testing.T) {
	s := newOrphanSetup(t)
	installed := s.path("installed")
	s.publish("--installer", "command", "--command", fmt.Sprintf("sh %s %s %s {version} %s", s.script, s.log, s.gate, installed))
	s.killDuringCommand()

	a := orphanStart(t, s.agentEnv)
	s.waitOrOverlap(a)
	s.finish(a, 1)
	s.checkLog(2)
	if b, _ := os.ReadFile(installed); string(b) != "1.1\n" {
		t.Errorf("install command wrote %q, want the version", b)
	}
}

// TestAgentOrphanHealthCheck kills the agent during the health check of a
// file release; the restarted agent must not replace the file, nor run the
// check again, while the first check runs.
func TestAgentOrphanHealthCheck(t *testing.T) {
	s := newOrphanSetup(t)
	check := fmt.Sprintf("sh %s %s %s", s.script, s.log, s.gate)
	s.write("gate", nil)
	s.publish("--installer", "file", "--target", s.target, "--mode", "0755", "--health-check", check)
	s.onceWant(0, "release installed")
	os.Remove(s.gate)
	s.publish("--installer", "file", "--target", s.target, "--mode", "0755", "--health-check", check)
	s.killDuringCommand()
	before, err := os.Stat(s.target)
	if err != nil {
		t.Fatal(err)
	}

	a := orphanStart(t, s.agentEnv)
	s.waitOrOverlap(a)
	if after, err := os.Stat(s.target); err != nil || !os.SameFile(before, after) {
		t.Fatalf("the restarted agent replaced the target while the earlier health check ran (stat: %v)\n%s", err, a.log.String())
	}
	s.finish(a, 2)
	s.checkLog(3)
}
