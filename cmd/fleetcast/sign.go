package main

import (
	"fmt"

	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/signing"
)

func cmdSign(args []string, env *cliEnv) error {
	fs := newFlagSet("sign", "fleetcast sign --key K.key [--passphrase-file F] PENDING.json\n\nExample: fleetcast sign --key bob.key /srv/mirror/myapp/stable/pending/7.json", env.stderr)
	var keyFiles stringList
	fs.Var(&keyFiles, "key", "private key to sign with (repeatable)")
	passFile := fs.String("passphrase-file", "", "read key passphrases from this file (wins over $"+passphraseEnv+")")
	if err := parse(fs, args); err != nil {
		return err
	}
	if len(keyFiles) == 0 || fs.NArg() != 1 {
		return usagef("want --key and one manifest file")
	}
	path := fs.Arg(0)
	data, err := readFileLimited(path, signing.MaxEnvelopeSize)
	if err != nil {
		return err
	}
	envl, err := signing.ParseEnvelope(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if envl.PayloadType != manifest.PayloadType {
		return fmt.Errorf("%s: %w %q: fleetcast sign co-signs release manifests (use fleetcast root sign for roots)", path, signing.ErrPayloadType, envl.PayloadType)
	}
	m, err := manifest.Decode(envl.Payload)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	fmt.Fprintf(env.stdout, "signing %s/%s version %s, sequence %d: %s, %d bytes, sha256 %s, installer %s\n",
		m.Product, m.Channel, m.Version, m.Sequence, m.Artifact.Name, m.Artifact.Size, m.Artifact.SHA256, m.Install.Installer)
	keys, err := loadPrivateKeys(keyFiles, env, *passFile)
	if err != nil {
		return err
	}
	return signAndWrite(path, envl, keys, env, fmt.Sprintf("%s/%s sequence %d", m.Product, m.Channel, m.Sequence))
}
