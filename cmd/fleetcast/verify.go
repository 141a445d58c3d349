package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/signing"
)

func cmdVerify(args []string, env *cliEnv) error {
	fset := newFlagSet("verify", "fleetcast verify --root root.json [--roots DIR] [--artifact FILE] MANIFEST\n\n"+
		"Example: fleetcast verify --root root.json --roots /srv/mirror/roots --artifact myapp /srv/mirror/myapp/stable/manifest.json", env.stderr)
	rootFile := fset.String("root", "", "trusted root (pinned)")
	rootsDir := fset.String("roots", "", "directory of published roots (N.root.json) to rotate through")
	artifact := fset.String("artifact", "", "also verify this file's chunks and whole hash")
	if err := parse(fset, args); err != nil {
		return err
	}
	if *rootFile == "" || fset.NArg() != 1 {
		return usagef("want --root FILE and one MANIFEST")
	}
	err := verify(env, *rootFile, *rootsDir, *artifact, fset.Arg(0), time.Now())
	if err != nil {
		return fmt.Errorf("FAILED: %w", err)
	}
	fmt.Fprintln(env.stdout, "OK")
	return nil
}

func verify(env *cliEnv, rootFile, rootsDir, artifact, path string, now time.Time) error {
	w := env.stdout
	root, err := readRootFile(rootFile)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "root       %s: version %d, %d of %d keys (%s)\n", rootFile, root.Version, root.Threshold, len(root.Keys), root.KeyIDs())
	if rootsDir != "" {
		if root, err = followRootsDir(root, rootsDir); err != nil {
			return err
		}
		fmt.Fprintf(w, "root chain %s: now version %d, %d of %d keys (%s)\n", rootsDir, root.Version, root.Threshold, len(root.Keys), root.KeyIDs())
	}
	data, err := readFileLimited(path, signing.MaxEnvelopeSize)
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	v, err := manifest.Verify(data, root, now)
	if err != nil {
		return err
	}
	m := v.Manifest
	fmt.Fprintf(w, "signatures %d valid of %d required: %s\n", len(v.SignedBy), root.Threshold, joinIDs(v.SignedBy))
	fmt.Fprintf(w, "expiry     root until %s, manifest until %s: current\n", root.Expires.Format(time.RFC3339), m.Expires.Format(time.RFC3339))
	fmt.Fprintf(w, "release    %s/%s version %s, sequence %d, created %s\n", m.Product, m.Channel, m.Version, m.Sequence, m.Created.Format(time.RFC3339))
	fmt.Fprintf(w, "artifact   %s: %d bytes in %d chunks, sha256 %s\n", m.Artifact.Name, m.Artifact.Size, len(m.Chunks), m.Artifact.SHA256)
	fmt.Fprintf(w, "install    %s\n", describeInstall(m.Install))
	if artifact == "" {
		return nil
	}
	return verifyArtifact(w, artifact, m)
}

// describeInstall is the install section on one line: the installer, then
// each field that is set.
func describeInstall(in manifest.Install) string {
	parts := []string{in.Installer}
	add := func(name, value string) {
		if value != "" {
			parts = append(parts, name+" "+value)
		}
	}
	add("target", quoteIfSet(in.Target))
	add("mode", in.Mode)
	add("command", formatArgv(in.Command))
	add("health check", formatArgv(in.HealthCheck))
	add("rollback command", formatArgv(in.RollbackCommand))
	return strings.Join(parts, ", ")
}

// formatArgv shows an argument vector with each element quoted, so that
// spaces inside an argument are visible; "" for none.
func formatArgv(argv []string) string {
	if len(argv) == 0 {
		return ""
	}
	return fmt.Sprintf("%q", argv)
}

func verifyArtifact(w interface{ Write([]byte) (int, error) }, path string, m *manifest.Manifest) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("artifact: %w", err)
	}
	defer f.Close()
	rep, err := manifest.VerifyArtifact(f, m)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	fmt.Fprintf(w, "artifact   %s: %d chunks and whole-file SHA-256 match\n", path, rep.Chunks)
	return nil
}

func followRootsDir(root *signing.Root, dir string) (*signing.Root, error) {
	return signing.FollowChain(context.Background(), root, func(_ context.Context, v uint64) ([]byte, error) {
		p := filepath.Join(dir, filepath.Base(manifest.RootPath(v)))
		data, err := readFileLimited(p, signing.MaxRootSize)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return data, err
	})
}
