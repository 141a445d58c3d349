package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/fleetcast/fleetcast/internal/atomicfile"
	"github.com/fleetcast/fleetcast/internal/strictjson"
	"github.com/fleetcast/fleetcast/signing"
)

func cmdKeygen(args []string, env *cliEnv) error {
	fs := newFlagSet("keygen", "fleetcast keygen -o NAME [--unencrypted | --passphrase-file F]\n\nExample: fleetcast keygen -o release  (writes release.pub and release.key, asks for a passphrase)", env.stderr)
	out := fs.String("o", "", "write NAME.pub and NAME.key")
	unencrypted := fs.Bool("unencrypted", false, "store the private key without a passphrase")
	passFile := fs.String("passphrase-file", "", "read the passphrase from this file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 0 {
		return usagef("want -o NAME and no arguments")
	}
	for _, p := range []string{*out + ".key", *out + ".pub"} {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%s exists: refusing to overwrite a key", p)
		}
	}
	var pass []byte
	if !*unencrypted {
		var err error
		if pass, err = (passphraseSource{env: env, file: *passFile}).get("Passphrase for the new key: ", true); err != nil {
			return err
		}
	}
	k, err := signing.GenerateKey(nil)
	if err != nil {
		return err
	}
	priv, err := signing.MarshalPrivateKey(k, pass)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(*out+".key", priv, 0o600); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(*out+".pub", signing.MarshalPublicKey(k.Public), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "key %s: wrote %s.pub and %s.key (%s)\n", k.Public.ID, *out, *out, map[bool]string{true: "unencrypted", false: "encrypted"}[*unencrypted])
	return nil
}

// loadPrivateKeys reads private key files, asking for passphrases as needed.
func loadPrivateKeys(paths []string, env *cliEnv, passFile string) ([]*signing.PrivateKey, error) {
	src := passphraseSource{env: env, file: passFile}
	var keys []*signing.PrivateKey
	for _, p := range paths {
		data, err := readFileLimited(p, signing.MaxKeyFileSize)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", p, err)
		}
		var pass []byte
		if signing.IsEncryptedPrivateKey(data) {
			if pass, err = src.get(fmt.Sprintf("Passphrase for %s: ", p), false); err != nil {
				return nil, fmt.Errorf("key %s: %w", p, err)
			}
		}
		k, err := signing.ParsePrivateKey(data, pass)
		if errors.Is(err, signing.ErrWrongPassphrase) {
			return nil, fmt.Errorf("key %s: wrong passphrase: the key was not decrypted, nothing was signed", p)
		}
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", p, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// readFileLimited reads a file, refusing one larger than limit bytes.
func readFileLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := strictjson.ReadAll(f, limit, signing.ErrTooLarge)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}
