package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/fleetcast/fleetcast/signing"
	"golang.org/x/term"
)

// maxAnswer bounds the line read in answer to a confirmation question.
const maxAnswer = 256

// confirmation is how a signer agrees to sign what was shown to them:
// --yes, or "y" typed at the terminal.
type confirmation struct {
	env  *cliEnv
	yes  bool   // --yes: do not ask
	what string // "release" or "root", for the question and the refusal
}

// possible refuses before any key is decrypted when the question cannot be
// asked: no --yes and stdin is not a terminal.
func (c confirmation) possible() error {
	if c.yes || stdinIsTerminal(c.env) {
		return nil
	}
	verb := "co-sign"
	if c.what != "release" {
		verb = "sign the " + c.what
	}
	return fmt.Errorf("refusing to %s without confirmation: review the %s above and pass --yes", verb, c.what)
}

// ask asks whether to sign with keys, unless --yes was given, and returns an
// error unless the answer is y or yes.
func (c confirmation) ask(keys []*signing.PrivateKey) error {
	if c.yes {
		return nil
	}
	ids := make([]signing.KeyID, len(keys))
	for i, k := range keys {
		ids[i] = k.Public.ID
	}
	fmt.Fprintf(c.env.stderr, "Sign this %s with key(s) %s? [y/N] ", c.what, joinIDs(ids))
	line, err := readLine(c.env.stdin, maxAnswer)
	if err != nil {
		return fmt.Errorf("read answer: %w; nothing was signed", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return fmt.Errorf("not confirmed: the %s was not signed", c.what)
}

// readLine reads up to a newline (or the end of input) one byte at a time,
// so that nothing after the line is consumed, and at most limit bytes.
func readLine(r io.Reader, limit int) (string, error) {
	var line []byte
	b := make([]byte, 1)
	for len(line) <= limit {
		n, err := r.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				return string(line), nil
			}
			line = append(line, b[0])
		}
		if errors.Is(err, io.EOF) {
			return string(line), nil
		}
		if err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("answer longer than %d bytes", limit)
}

// stdinIsTerminal reports whether the command's input is a terminal that a
// person can answer questions on.
func stdinIsTerminal(env *cliEnv) bool {
	f, ok := env.stdin.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// envelopeSigners lists the key ids that an envelope's signatures name; they
// are not verified here.
func envelopeSigners(e *signing.Envelope) string {
	if len(e.Signatures) == 0 {
		return "nobody yet"
	}
	ids := make([]signing.KeyID, len(e.Signatures))
	for i, s := range e.Signatures {
		ids[i] = s.KeyID
	}
	return joinIDs(ids) + " (key ids as listed in the file; fleetcast verify checks the signatures)"
}

// signerFlags are the flags shared by the commands that add signatures
// (sign, root sign).
type signerFlags struct {
	keys     stringList
	passFile string
	yes      bool
}

func (f *signerFlags) register(fs *flag.FlagSet, what string) {
	fs.Var(&f.keys, "key", "private key to sign with (repeatable)")
	fs.StringVar(&f.passFile, "passphrase-file", "", "read key passphrases from this file (wins over $"+passphraseEnv+")")
	fs.BoolVar(&f.yes, "yes", false, "sign without asking (after reviewing the "+what+")")
}

// signReviewed signs envl (already shown to the user) once confirmed, and
// rewrites path. what names the document in the question ("release", "root").
func (f *signerFlags) signReviewed(env *cliEnv, path string, envl *signing.Envelope, what, label string) error {
	c := confirmation{env: env, yes: f.yes, what: what}
	if err := c.possible(); err != nil {
		return err
	}
	keys, err := loadPrivateKeys(f.keys, env, f.passFile)
	if err != nil {
		return err
	}
	if err := c.ask(keys); err != nil {
		return err
	}
	return signAndWrite(path, envl, keys, env, label)
}
