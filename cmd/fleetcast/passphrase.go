package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/fleetcast/fleetcast/signing"
	"golang.org/x/term"
)

// passphraseEnv names the environment variable that holds a key passphrase.
const passphraseEnv = "FLEETCAST_PASSPHRASE"

// maxPassphraseFile bounds --passphrase-file.
const maxPassphraseFile = 4 << 10

// passphraseSource finds the passphrase: an explicit --passphrase-file, then
// the environment, then a terminal prompt. The file comes first because it
// was named on this command line, while the environment may be left over.
type passphraseSource struct {
	env  *cliEnv
	file string
}

func (p passphraseSource) get(prompt string, confirm bool) ([]byte, error) {
	if p.file != "" {
		return readPassphraseFile(p.file)
	}
	if v := p.env.getenv(passphraseEnv); v != "" {
		return []byte(v), nil
	}
	return promptPassphrase(prompt, confirm)
}

func readPassphraseFile(path string) ([]byte, error) {
	b, err := readFileLimited(path, maxPassphraseFile)
	if errors.Is(err, signing.ErrTooLarge) {
		return nil, fmt.Errorf("passphrase file %s holds more than %d bytes: it is not a passphrase file", path, maxPassphraseFile)
	}
	if err != nil {
		return nil, fmt.Errorf("passphrase file: %w", err)
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return nil, fmt.Errorf("passphrase file %s is empty", path)
	}
	return b, nil
}

func promptPassphrase(prompt string, confirm bool) ([]byte, error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, errors.New("no passphrase: set " + passphraseEnv + ", pass --passphrase-file, or run in a terminal")
	}
	fmt.Fprint(os.Stderr, prompt)
	pass, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	if len(pass) == 0 {
		return nil, errors.New("empty passphrase (use --unencrypted to store a key without one)")
	}
	if !confirm {
		return pass, nil
	}
	fmt.Fprint(os.Stderr, "Repeat passphrase: ")
	again, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	if !bytes.Equal(pass, again) {
		return nil, errors.New("the passphrases do not match")
	}
	return pass, nil
}
