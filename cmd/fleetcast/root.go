package main

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetcast/fleetcast/internal/atomicfile"
	"github.com/fleetcast/fleetcast/publisher"
	"github.com/fleetcast/fleetcast/signing"
)

func cmdRoot(args []string, env *cliEnv) error {
	if len(args) == 0 {
		return usagef("want a subcommand: init, sign or publish")
	}
	sub := map[string]func([]string, *cliEnv) error{"init": cmdRootInit, "sign": cmdRootSign, "publish": cmdRootPublish}[args[0]]
	if sub != nil {
		return sub(args[1:], env)
	}
	return usagef("unknown subcommand %q: want init, sign or publish", args[0])
}

func cmdRootInit(args []string, env *cliEnv) error {
	fs := newFlagSet("root init", "fleetcast root init -o root.json --key A.pub [--key B.pub ...] --threshold K [--expires 8760h] [--previous OLD.json]\n\n"+
		"Example: fleetcast root init -o root.json --key alice.pub --key bob.pub --threshold 2\n"+
		"With --previous, the new root is version OLD+1: sign it with a threshold of OLD's keys and of its own (rotation).", env.stderr)
	out := fs.String("o", "", "write the unsigned root here")
	var keyFiles stringList
	fs.Var(&keyFiles, "key", "public key file allowed to sign (repeatable)")
	threshold := fs.Int("threshold", 1, "signatures required, k of n")
	expires := fs.Duration("expires", 8760*time.Hour, "how long the root is valid (positive)")
	previous := fs.String("previous", "", "root this one replaces (sets the version to its version + 1)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" || len(keyFiles) == 0 || fs.NArg() != 0 {
		return usagef("want -o FILE and at least one --key")
	}
	if *expires <= 0 {
		return usagef("--expires %v: want a positive duration, e.g. 8760h", *expires)
	}
	root := &signing.Root{Version: 1, Threshold: *threshold, Expires: time.Now().Add(*expires).UTC().Truncate(time.Second)}
	if *previous != "" {
		prev, err := readRootFile(*previous)
		if err != nil {
			return err
		}
		root.Version = prev.Version + 1
	}
	for _, p := range keyFiles {
		data, err := readFileLimited(p, signing.MaxKeyFileSize)
		if err != nil {
			return fmt.Errorf("key %s: %w", p, err)
		}
		pub, err := signing.ParsePublicKey(data)
		if err != nil {
			return fmt.Errorf("key %s: %w", p, err)
		}
		root.Keys = append(root.Keys, pub)
	}
	envl, err := root.Envelope()
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(*out, envl.Marshal(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "root version %d: %d of %d keys (%s), expires %s; wrote %s unsigned: sign it with fleetcast root sign\n",
		root.Version, root.Threshold, len(root.Keys), root.KeyIDs(), root.Expires.Format(time.RFC3339), *out)
	return nil
}

// readRootFile reads a root that must be signed by a threshold of its own keys.
func readRootFile(path string) (*signing.Root, error) {
	data, err := readFileLimited(path, signing.MaxRootSize)
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", path, err)
	}
	root, _, err := signing.ParseRoot(data)
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", path, err)
	}
	return root, nil
}

func cmdRootSign(args []string, env *cliEnv) error {
	fs := newFlagSet("root sign", "fleetcast root sign --key A.key [--yes] [--passphrase-file F] root.json\n\n"+
		"Shows the root and asks before signing (--yes: do not ask; needed when stdin is not a terminal).\n\n"+
		"Example: fleetcast root sign --key alice.key root.json", env.stderr)
	var sf signerFlags
	sf.register(fs, "root")
	if err := parse(fs, args); err != nil {
		return err
	}
	if len(sf.keys) == 0 || fs.NArg() != 1 {
		return usagef("want --key and one root file")
	}
	path := fs.Arg(0)
	envl, root, err := readUnverifiedRoot(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "root       %s: version %d\n", path, root.Version)
	fmt.Fprintf(env.stdout, "expires    %s%s\n", root.Expires.Format(time.RFC3339), expiredNote(root.Expires, time.Now()))
	fmt.Fprintf(env.stdout, "threshold  %d of %d keys\n", root.Threshold, len(root.Keys))
	fmt.Fprintf(env.stdout, "keys       %s\n", root.KeyIDs())
	fmt.Fprintf(env.stdout, "signed by  %s\n", envelopeSigners(envl))
	return sf.signReviewed(env, path, envl, "root", fmt.Sprintf("root version %d", root.Version))
}

// readUnverifiedRoot reads a root envelope without verifying its signatures
// (a signer is adding one) and decodes the root it describes.
func readUnverifiedRoot(path string) (*signing.Envelope, *signing.Root, error) {
	envl, err := readEnvelopeOfType(path, signing.MaxRootSize, signing.RootPayloadType, "")
	if err != nil {
		return nil, nil, err
	}
	root, err := signing.DecodeRootPayload(envl.Payload)
	if err != nil {
		return nil, nil, fmt.Errorf("root %s: %w", path, err)
	}
	return envl, root, nil
}

// readEnvelopeOfType reads an envelope of at most limit bytes and checks its
// payload type; hint is added to a payload-type error.
func readEnvelopeOfType(path string, limit int64, payloadType, hint string) (*signing.Envelope, error) {
	data, err := readFileLimited(path, limit)
	if err != nil {
		return nil, err
	}
	envl, err := signing.ParseEnvelope(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if envl.PayloadType != payloadType {
		return nil, fmt.Errorf("%s: %w %q, want %q%s", path, signing.ErrPayloadType, envl.PayloadType, payloadType, hint)
	}
	return envl, nil
}

// signAndWrite adds each key's signature to envl and rewrites path atomically.
func signAndWrite(path string, envl *signing.Envelope, keys []*signing.PrivateKey, env *cliEnv, what string) error {
	for _, k := range keys {
		if envl.Sign(k) {
			fmt.Fprintf(env.stdout, "%s: signed with key %s\n", what, k.Public.ID)
		} else {
			fmt.Fprintf(env.stdout, "%s: already signed by key %s\n", what, k.Public.ID)
		}
	}
	if err := atomicfile.WriteFile(path, envl.Marshal(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s: %d signature(s) in %s\n", what, len(envl.Signatures), path)
	return nil
}

func cmdRootPublish(args []string, env *cliEnv) error {
	fs := newFlagSet("root publish", "fleetcast root publish --origin DIR root.json\n\nExample: fleetcast root publish --origin /srv/mirror root-v2.json  (adds a rotated root to the chain agents follow)", env.stderr)
	origin := fs.String("origin", "", "origin mirror directory")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *origin == "" || fs.NArg() != 1 {
		return usagef("want --origin DIR and one root file")
	}
	return publishRoot(context.Background(), publisher.Origin{Dir: *origin}, fs.Arg(0), env)
}

func publishRoot(ctx context.Context, o publisher.Origin, path string, env *cliEnv) error {
	data, err := readFileLimited(path, signing.MaxRootSize)
	if err != nil {
		return err
	}
	root, added, err := o.AddRoot(ctx, data)
	if err != nil {
		return fmt.Errorf("root %s: %w", path, err)
	}
	if added {
		fmt.Fprintf(env.stdout, "root version %d (%d of %s) published to %s\n", root.Version, root.Threshold, root.KeyIDs(), o.Dir)
	}
	return nil
}
