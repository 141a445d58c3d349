package main

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/signing"
)

const signUsage = `fleetcast sign --key K.key [--artifact FILE] [--yes] [--passphrase-file F] PENDING.json

Shows the whole release, checks FILE against it when given, and asks before
signing (--yes: do not ask; needed when stdin is not a terminal).

Example: fleetcast sign --key bob.key --artifact myapp /srv/mirror/myapp/stable/pending/7.json`

func cmdSign(args []string, env *cliEnv) error {
	fs := newFlagSet("sign", signUsage, env.stderr)
	var sf signerFlags
	sf.register(fs, "release")
	artifact := fs.String("artifact", "", "check this file against the manifest first; refuse to sign if it differs")
	if err := parse(fs, args); err != nil {
		return err
	}
	if len(sf.keys) == 0 || fs.NArg() != 1 {
		return usagef("want --key and one manifest file")
	}
	path := fs.Arg(0)
	envl, m, err := readPendingManifest(path)
	if err != nil {
		return err
	}
	printRelease(env.stdout, path, m, envl, time.Now())
	if *artifact != "" {
		if err := verifyArtifact(env.stdout, *artifact, m); err != nil {
			return fmt.Errorf("refusing to sign: %w", err)
		}
	}
	return sf.signReviewed(env, path, envl, "release", fmt.Sprintf("%s/%s sequence %d", m.Product, m.Channel, m.Sequence))
}

// readPendingManifest reads a manifest envelope without verifying its
// signatures (the co-signer adds one) and decodes the release it describes.
func readPendingManifest(path string) (*signing.Envelope, *manifest.Manifest, error) {
	envl, err := readEnvelopeOfType(path, signing.MaxEnvelopeSize, manifest.PayloadType,
		": fleetcast sign co-signs release manifests (use fleetcast root sign for roots)")
	if err != nil {
		return nil, nil, err
	}
	m, err := manifest.Decode(envl.Payload)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return envl, m, nil
}

// printRelease shows everything a co-signature vouches for.
func printRelease(w io.Writer, path string, m *manifest.Manifest, envl *signing.Envelope, now time.Time) {
	fmt.Fprintf(w, "release    %s: %s/%s version %s, sequence %d\n", path, m.Product, m.Channel, m.Version, m.Sequence)
	fmt.Fprintf(w, "created    %s\n", m.Created.Format(time.RFC3339))
	fmt.Fprintf(w, "expires    %s%s\n", m.Expires.Format(time.RFC3339), expiredNote(m.Expires, now))
	fmt.Fprintf(w, "artifact   %s, %d bytes, sha256 %s\n", m.Artifact.Name, m.Artifact.Size, m.Artifact.SHA256)
	fmt.Fprintf(w, "chunks     %d\n", len(m.Chunks))
	in := m.Install
	fmt.Fprintf(w, "install    installer         %s\n", in.Installer)
	for _, f := range []struct{ name, value string }{
		{"target", quoteIfSet(in.Target)},
		{"mode", in.Mode},
		{"command", formatArgv(in.Command)},
		{"health_check", formatArgv(in.HealthCheck)},
		{"rollback_command", formatArgv(in.RollbackCommand)},
	} {
		if f.value == "" {
			f.value = "(none)"
		}
		fmt.Fprintf(w, "           %-17s %s\n", f.name, f.value)
	}
	fmt.Fprintf(w, "signed by  %s\n", envelopeSigners(envl))
}

// quoteIfSet quotes a string from a document so that control characters
// and invisible runes show escaped instead of acting on the terminal.
func quoteIfSet(s string) string {
	if s == "" {
		return ""
	}
	return strconv.Quote(s)
}

func expiredNote(t, now time.Time) string {
	if now.Before(t) {
		return ""
	}
	return " (EXPIRED: verifiers will refuse it)"
}
