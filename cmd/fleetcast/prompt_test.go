//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// answer is one prompt of a terminal session and the line typed at it.
type answer struct {
	prompt string // the output ends with this when the program waits
	text   string
	secret bool // read with echo off: wait until echo is off before typing
}

func passphrase(s string) answer { return answer{prompt: ": ", text: s, secret: true} }

func yesNo(s string) answer { return answer{prompt: "[y/N] ", text: s} }

// promptSession runs the binary on a pseudo-terminal, answering each prompt in
// turn. A secret answer is typed only once the terminal's ECHO flag is off:
// term.ReadPassword turns echo off after the prompt is printed, and a line
// typed before that would be echoed.
func promptSession(t *testing.T, dir string, answers []answer, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(fleetcastBin, args...)
	cmd.Dir = dir
	cmd.Env = filteredEnv()
	tty, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	timer := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	var out strings.Builder
	r := bufio.NewReader(tty)
	for _, a := range answers {
		if err := readUntil(r, &out, a.prompt); err != nil {
			t.Fatalf("waiting for a prompt: %v; output so far %q", err, out.String())
		}
		if a.secret {
			if err := waitEchoOff(tty, 10*time.Second); err != nil {
				t.Fatalf("%v; output so far %q", err, out.String())
			}
		}
		tty.Write([]byte(a.text + "\r"))
	}
	readUntil(r, &out, "\x00") // the rest, until the terminal closes
	cmd.Wait()
	return out.String(), cmd.ProcessState.ExitCode()
}

// waitEchoOff polls the terminal's settings (through the pty master, which
// reports the slave's) until ECHO is off, or the deadline passes.
func waitEchoOff(tty *os.File, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		if err != nil {
			return err
		}
		if tio.Lflag&unix.ECHO == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("terminal echo still on %v after the passphrase prompt", timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// readUntil reads from r into out until the output read by this call ends
// with suffix. Output from before the call does not count: it may end with
// the previous prompt.
func readUntil(r *bufio.Reader, out *strings.Builder, suffix string) error {
	start := out.Len()
	for !strings.HasSuffix(out.String()[start:], suffix) {
		b, err := r.ReadByte()
		if err != nil {
			return err
		}
		out.WriteByte(b)
	}
	return nil
}

func TestPassphrasePromptOnTerminal(t *testing.T) {
	dir := t.TempDir()
	out, code := promptSession(t, dir, []answer{passphrase("s3cret"), passphrase("different")}, "keygen", "-o", "k")
	if code != 1 || !strings.Contains(out, "do not match") {
		t.Fatalf("mismatched confirmation: exit %d, output %q", code, out)
	}
	out, code = promptSession(t, dir, []answer{passphrase("s3cret"), passphrase("s3cret")}, "keygen", "-o", "k")
	if code != 0 || !strings.Contains(out, "Repeat passphrase") || strings.Contains(out, "s3cret") {
		t.Fatalf("keygen on a terminal: exit %d, output %q (the passphrase must not echo)", code, out)
	}
	c := &cli{t: t, dir: dir}
	c.ok("root", "init", "-o", "root.json", "--key", "k.pub")
	if out, code := promptSession(t, dir, []answer{passphrase("wrong")}, "root", "sign", "--key", "k.key", "root.json"); code != 1 || !strings.Contains(out, "wrong passphrase") {
		t.Fatalf("wrong passphrase on a terminal: exit %d, output %q", code, out)
	}
	if out, code := promptSession(t, dir, []answer{passphrase("s3cret"), yesNo("y")}, "root", "sign", "--key", "k.key", "root.json"); code != 0 || !strings.Contains(out, "signed with key") || strings.Contains(out, "s3cret") {
		t.Fatalf("right passphrase on a terminal: exit %d, output %q", code, out)
	}
	if _, err := os.Stat(c.path("k.key")); err != nil {
		t.Fatal(err)
	}
}

func TestSignConfirmationPromptOnTerminal(t *testing.T) {
	dir := t.TempDir()
	c := &cli{t: t, dir: dir}
	for _, k := range []string{"a", "b"} {
		c.ok("keygen", "--unencrypted", "-o", k)
	}
	c.ok("root", "init", "-o", "root.json", "--key", "a.pub", "--key", "b.pub", "--threshold", "2")
	c.ok("root", "sign", "--yes", "--key", "a.key", "--key", "b.key", "root.json")
	c.write("app.bin", randomBytes(8, 1000))
	c.ok("publish", "--origin", "mirror", "--root", "root.json", "--key", "a.key",
		"--product", "app", "--channel", "stable", "--version", "1", "--target", "/opt/app", "app.bin")
	pending := "mirror/app/stable/pending/1.json"
	before, err := os.ReadFile(c.path(pending))
	if err != nil {
		t.Fatal(err)
	}

	for _, no := range []string{"n", "", "yep"} {
		out, code := promptSession(t, dir, []answer{yesNo(no)}, "sign", "--key", "b.key", pending)
		if code != 1 || !strings.Contains(out, "app/stable version 1, sequence 1") || !strings.Contains(out, "Sign this release with key(s) ") || !strings.Contains(out, "not confirmed") {
			t.Fatalf("answer %q: exit %d, output %q; want the release, the question and a refusal", no, code, out)
		}
		if after, _ := os.ReadFile(c.path(pending)); !bytes.Equal(before, after) {
			t.Fatalf("answer %q: the pending manifest was signed", no)
		}
	}
	out, code := promptSession(t, dir, []answer{yesNo("y")}, "sign", "--key", "b.key", pending)
	if code != 0 || !strings.Contains(out, "signed with key") {
		t.Fatalf("answer y: exit %d, output %q", code, out)
	}
	c.ok("publish", "--origin", "mirror", "--manifest", pending)
}
