//go:build linux || darwin

package main

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// promptSession runs the binary on a pseudo-terminal, answering each prompt
// with the next of answers as soon as the prompt appears.
func promptSession(t *testing.T, dir string, answers []string, args ...string) (string, int) {
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
		if err := readUntil(r, &out, ": "); err != nil {
			t.Fatalf("waiting for a prompt: %v; output so far %q", err, out.String())
		}
		tty.Write([]byte(a + "\r"))
	}
	readUntil(r, &out, "\x00") // the rest, until the terminal closes
	cmd.Wait()
	return out.String(), cmd.ProcessState.ExitCode()
}

func readUntil(r *bufio.Reader, out *strings.Builder, suffix string) error {
	for !strings.HasSuffix(out.String(), suffix) {
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
	out, code := promptSession(t, dir, []string{"s3cret", "different"}, "keygen", "-o", "k")
	if code != 1 || !strings.Contains(out, "do not match") {
		t.Fatalf("mismatched confirmation: exit %d, output %q", code, out)
	}
	out, code = promptSession(t, dir, []string{"s3cret", "s3cret"}, "keygen", "-o", "k")
	if code != 0 || !strings.Contains(out, "Repeat passphrase") || strings.Contains(out, "s3cret") {
		t.Fatalf("keygen on a terminal: exit %d, output %q (the passphrase must not echo)", code, out)
	}
	c := &cli{t: t, dir: dir}
	c.ok("root", "init", "-o", "root.json", "--key", "k.pub")
	if out, code := promptSession(t, dir, []string{"wrong"}, "root", "sign", "--key", "k.key", "root.json"); code != 1 || !strings.Contains(out, "wrong passphrase") {
		t.Fatalf("wrong passphrase on a terminal: exit %d, output %q", code, out)
	}
	if out, code := promptSession(t, dir, []string{"s3cret"}, "root", "sign", "--key", "k.key", "root.json"); code != 0 || !strings.Contains(out, "signed with key") {
		t.Fatalf("right passphrase on a terminal: exit %d, output %q", code, out)
	}
	if _, err := os.Stat(c.path("k.key")); err != nil {
		t.Fatal(err)
	}
}
