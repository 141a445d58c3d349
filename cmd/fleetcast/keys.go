package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/fleetcast/fleetcast/internal/atomicfile"
	"github.com/fleetcast/fleetcast/internal/strictjson"
	"github.com/fleetcast/fleetcast/signing"
)

func cmdKeygen(args []string, env *cliEnv) error {
	fs := newFlagSet("keygen", "fleetcast keygen -o NAME [--unencrypted | --passphrase-file F]\n\nExample: fleetcast keygen -o release  (writes release.pub and release.key, asks for a passphrase)", env.stderr)
	out := fs.String("o", "", "write NAME.pub and NAME.key")
	unencrypted := fs.Bool("unencrypted", false, "store the private key without a passphrase")
	passFile := fs.String("passphrase-file", "", "read the passphrase from this file (wins over $"+passphraseEnv+")")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 0 {
		return usagef("want -o NAME and no arguments")
	}
	if *unencrypted && *passFile != "" {
		return usagef("--unencrypted and --passphrase-file exclude each other")
	}
	// A friendly early refusal; writeKeyPair refuses again, race-free.
	for _, p := range []string{*out + ".key", *out + ".pub"} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s exists: refusing to overwrite a key", p)
		}
	}
	k, priv, err := newPrivateKeyFile(env, *unencrypted, *passFile)
	if err != nil {
		return err
	}
	if err := writeKeyPair(*out, k, priv); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "key %s: wrote %s.pub and %s.key (%s)\n", k.Public.ID, *out, *out, map[bool]string{true: "unencrypted", false: "encrypted"}[*unencrypted])
	return nil
}

// newPrivateKeyFile generates a key and encodes it, encrypted unless asked not to.
func newPrivateKeyFile(env *cliEnv, unencrypted bool, passFile string) (*signing.PrivateKey, []byte, error) {
	var pass []byte
	if !unencrypted {
		var err error
		if pass, err = (passphraseSource{env: env, file: passFile}).get("Passphrase for the new key: ", true); err != nil {
			return nil, nil, err
		}
	}
	k, err := signing.GenerateKey(nil)
	if err != nil {
		return nil, nil, err
	}
	if unencrypted {
		return k, signing.MarshalUnencryptedPrivateKey(k), nil
	}
	priv, err := signing.MarshalPrivateKey(k, pass)
	return k, priv, err
}

// writeKeyPair creates NAME.key and then NAME.pub, each only if it does not
// exist, so that a process racing on the same name never loses its key.
func writeKeyPair(name string, k *signing.PrivateKey, priv []byte) error {
	if err := atomicfile.WriteNew(name+".key", priv, 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s.key exists: refusing to overwrite a key", name)
		}
		return err
	}
	if err := atomicfile.WriteNew(name+".pub", signing.MarshalPublicKey(k.Public), 0o644); err != nil {
		return fmt.Errorf("key %s: wrote %s.key but NOT %s.pub: %w\n"+
			"the private key in %s.key is complete but has no public key file; delete %s.key and run keygen again (choose another NAME if %s.pub is another key's)",
			k.Public.ID, name, name, err, name, name, name)
	}
	return nil
}

// loadPrivateKeys reads private key files, asking for passphrases as needed.
func loadPrivateKeys(paths []string, env *cliEnv, passFile string) ([]*signing.PrivateKey, error) {
	src := passphraseSource{env: env, file: passFile}
	var keys []*signing.PrivateKey
	for _, p := range paths {
		data, err := readPrivateKeyFile(p, env)
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

// readPrivateKeyFile reads a private key file, warning on stderr when its
// permissions let other users read it.
func readPrivateKeyFile(path string, env *cliEnv) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil {
		warnKeyFileMode(env.stderr, path, fi.Mode())
	}
	return readLimited(f, path, signing.MaxKeyFileSize)
}

// readFileLimited reads a file, refusing one larger than limit bytes. It
// never reads more than limit+1 bytes.
func readFileLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f, path, limit)
}

func readLimited(f *os.File, path string, limit int64) ([]byte, error) {
	b, err := strictjson.ReadAll(f, limit, signing.ErrTooLarge)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}
