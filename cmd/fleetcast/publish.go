package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/fleetcast/fleetcast/internal/units"

	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/publisher"
	"github.com/fleetcast/fleetcast/signing"
)

const publishUsage = `fleetcast publish --origin DIR --key K.key [--key K2.key ...] --product P --channel C --version V
                  [--name NAME] [--expires 720h] [--root root.json] [installer flags] FILE
       fleetcast publish --origin DIR --manifest PENDING.json

Example: fleetcast publish --origin /srv/mirror --root root.json --key release.key \
           --product myapp --channel stable --version 1.4.2 \
           --installer file --target /opt/myapp/bin/myapp --mode 0755 myapp-linux-amd64`

type publishFlags struct {
	origin, product, channel, version, name, rootFile, pending, passFile string
	keys                                                                 stringList
	expires                                                              time.Duration
	install                                                              installFlags
	chunkMin, chunkAvg, chunkMax                                         int
}

// splitNote ends the help of the flags that take a command line.
const splitNote = ".\nSplit on white space into arguments: no shell, no quoting, so no argument can contain a space"

type installFlags struct {
	installer, target, mode, command, healthCheck, rollback string
}

func cmdPublish(args []string, env *cliEnv) error {
	var f publishFlags
	fs := newFlagSet("publish", publishUsage, env.stderr)
	fs.StringVar(&f.origin, "origin", "", "origin mirror directory to write")
	fs.Var(&f.keys, "key", "private key to sign with (repeatable)")
	fs.StringVar(&f.passFile, "passphrase-file", "", "read key passphrases from this file (wins over $"+passphraseEnv+")")
	fs.StringVar(&f.product, "product", "", "product name")
	fs.StringVar(&f.channel, "channel", "", "channel name, e.g. stable")
	fs.StringVar(&f.version, "version", "", "human version string, new in the channel")
	fs.StringVar(&f.name, "name", "", "artifact name recorded in the manifest (default: FILE's base name)")
	fs.DurationVar(&f.expires, "expires", publisher.DefaultExpiry, "how long the manifest stays valid (positive)")
	fs.StringVar(&f.rootFile, "root", "", "trust root to add to the origin's root chain first (needed on a new origin)")
	fs.StringVar(&f.pending, "manifest", "", "publish this co-signed pending manifest instead of a file")
	fs.StringVar(&f.install.installer, "installer", manifest.InstallerFile, "installer: file, archive or command")
	fs.StringVar(&f.install.target, "target", "", "install target path (file, archive)")
	fs.StringVar(&f.install.mode, "mode", "", "file mode for the file installer, e.g. 0755")
	fs.StringVar(&f.install.command, "command", "", `command installer's command, e.g. "dpkg -i {artifact}"; {artifact} is the artifact path`+splitNote)
	fs.StringVar(&f.install.healthCheck, "health-check", "", "command run after install; failure rolls back"+splitNote)
	fs.StringVar(&f.install.rollback, "rollback-command", "", "command installer's rollback command"+splitNote)
	def := manifest.DefaultChunking()
	fs.IntVar(&f.chunkMin, "chunk-min", def.Min, "minimum chunk size in bytes")
	fs.IntVar(&f.chunkAvg, "chunk-avg", def.Avg, "average chunk size in bytes (a power of two)")
	fs.IntVar(&f.chunkMax, "chunk-max", def.Max, "maximum chunk size in bytes")
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if f.origin == "" {
		return usagef("want --origin DIR")
	}
	if f.expires <= 0 {
		return usagef("--expires %v: want a positive duration, e.g. 720h", f.expires)
	}
	if err := f.checkNames(); err != nil {
		return err
	}
	o := publisher.Origin{Dir: f.origin}
	if f.rootFile != "" {
		if err := publishRoot(ctx, o, f.rootFile, env); err != nil {
			return err
		}
	}
	if f.pending != "" {
		if fs.NArg() != 0 || len(f.keys) != 0 {
			return usagef("--manifest publishes a co-signed manifest: give no FILE and no --key (use fleetcast sign)")
		}
		return publishPending(ctx, o, f.pending, env)
	}
	if fs.NArg() != 1 || len(f.keys) == 0 {
		return usagef("want --key and exactly one FILE")
	}
	return publishFile(ctx, o, fs.Arg(0), f, env)
}

// checkNames refuses a bad --product or --channel before anything is
// written, with every rule a name must follow (the agent's config says the
// same). A co-signed manifest (--manifest) carries its own names.
func (f *publishFlags) checkNames() error {
	if f.pending != "" {
		return nil
	}
	for _, n := range []struct{ flag, value string }{{"--product", f.product}, {"--channel", f.channel}} {
		if err := manifest.CheckName(n.flag, n.value); err != nil {
			return usageError{err.Error()}
		}
	}
	return nil
}

func publishFile(ctx context.Context, o publisher.Origin, path string, f publishFlags, env *cliEnv) error {
	keys, err := loadPrivateKeys(f.keys, env, f.passFile)
	if err != nil {
		return err
	}
	opts := publisher.Options{
		Product: f.product, Channel: f.channel, Version: f.version, ArtifactName: f.name, Expires: f.expires,
		Install:  f.install.manifest(),
		Chunking: manifest.Chunking{Algorithm: manifest.ChunkingFastCDC, Min: f.chunkMin, Avg: f.chunkAvg, Max: f.chunkMax},
		Keys:     keys,
	}
	res, err := publisher.Publish(ctx, o, path, opts)
	if err != nil {
		return err
	}
	printPublished(env, o, res)
	return nil
}

func (f installFlags) manifest() manifest.Install {
	return manifest.Install{
		Installer: f.installer, Target: f.target, Mode: f.mode,
		Command: strings.Fields(f.command), HealthCheck: strings.Fields(f.healthCheck), RollbackCommand: strings.Fields(f.rollback),
	}
}

func publishPending(ctx context.Context, o publisher.Origin, path string, env *cliEnv) error {
	data, err := readFileLimited(path, signing.MaxEnvelopeSize)
	if err != nil {
		return err
	}
	res, err := publisher.PublishPending(ctx, o, data, time.Now())
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	printPublished(env, o, res)
	return nil
}

func printPublished(env *cliEnv, o publisher.Origin, res *publisher.Result) {
	m := res.Manifest
	w := env.stdout
	fmt.Fprintf(w, "%s/%s version %s, sequence %d\n", m.Product, m.Channel, m.Version, m.Sequence)
	fmt.Fprintf(w, "  artifact   %s, %s, sha256 %s\n", m.Artifact.Name, units.FormatBytes(m.Artifact.Size), m.Artifact.SHA256)
	fmt.Fprintf(w, "  chunks     %d (%d new to the origin)\n", res.Chunks, res.NewChunks)
	fmt.Fprintf(w, "  bytes      %s (%s new to the origin)\n", units.FormatBytes(res.Bytes), units.FormatBytes(res.NewBytes))
	secs := res.Duration.Seconds()
	fmt.Fprintf(w, "  time       %.2fs (%s/s)\n", secs, units.FormatBytes(int64(float64(res.Bytes)/max(secs, 1e-9))))
	fmt.Fprintf(w, "  signed by  %s (%d of %d required, root version %d)\n", joinIDs(res.SignedBy), len(res.SignedBy), res.Root.Threshold, res.Root.Version)
	if res.AlreadyPublished {
		fmt.Fprintf(w, "already published as %s: nothing changed\n", o.Dir+"/"+res.Path)
		return
	}
	if res.Published {
		fmt.Fprintf(w, "published %s\n", o.Dir+"/"+res.Path)
		return
	}
	p := o.Dir + "/" + res.Path
	fmt.Fprintf(w, "NOT published: %d more signature(s) needed.\n  co-sign:  fleetcast sign --key OTHER.key %s\n  publish:  fleetcast publish --origin %s --manifest %s\n",
		res.Root.Threshold-len(res.SignedBy), p, o.Dir, p)
}

func joinIDs(ids []signing.KeyID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = string(id)
	}
	return strings.Join(s, ", ")
}
