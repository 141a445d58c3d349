package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/fleetcast/fleetcast/internal/units"

	"github.com/fleetcast/fleetcast/publisher"
)

// compareBlock is the block size of the installed-file comparison.
const compareBlock = 1 << 20

func (d *demo) releaseStep(seq int) func(context.Context) error {
	return func(ctx context.Context) error { return d.release(ctx, seq) }
}

// release publishes release seq, shows its rollout and sums it up.
func (d *demo) release(ctx context.Context, seq int) error {
	sentBefore := d.origin.sent.Load()
	res, err := d.publish(ctx, seq)
	if err != nil {
		return err
	}
	start := time.Now()
	m := res.Manifest
	fmt.Fprintf(d.out, "\nrelease %d: version %s, %s in %d chunks (%s new to the origin), signed and published in %s\n",
		seq, m.Version, units.FormatBytes(m.Artifact.Size), res.Chunks, units.FormatBytes(res.NewBytes), secs(res.Duration))
	if seq > 1 {
		fmt.Fprintf(d.out, "  %s changed in the middle of the file: agents fetch only the chunks around the change\n",
			units.FormatBytes(min(changeSize, d.opts.Size/4)))
	}
	rows, err := d.watch(ctx, uint64(seq), start, sentBefore)
	if err != nil {
		return err
	}
	d.printSummary(seq, res, rows, d.origin.sent.Load()-sentBefore, time.Since(start))
	return nil
}

// printSummary prints one line per agent and the fleet's totals.
func (d *demo) printSummary(seq int, res *publisher.Result, rows []row, originSent int64, took time.Duration) {
	size := res.Manifest.Artifact.Size
	fmt.Fprintf(d.out, "release %d installed on all %d agents in %s\n", seq, len(rows), secs(took))
	fmt.Fprintf(d.out, "  %-8s %15s %12s %12s %12s\n", "agent", "installed after", "from origin", "from peers", "reused")
	minReused, peers := int64(-1), int64(0)
	for _, r := range rows {
		fmt.Fprintf(d.out, "  %-8s %15s %12s %12s %12s\n", r.name, secs(r.installed),
			units.FormatBytes(r.tr.Origin), units.FormatBytes(r.tr.Peer), units.FormatBytes(reusedBytes(r.tr)))
		peers += r.tr.Peer
		if minReused < 0 || reusedBytes(r.tr) < minReused {
			minReused = reusedBytes(r.tr)
		}
	}
	ratio := float64(originSent) / float64(size)
	fmt.Fprintf(d.out, "  fleet: origin sent %s = %.2fx of the release to %d agents (without peers: %.2fx); peers moved %s; %s\n",
		units.FormatBytes(originSent), ratio, len(rows), float64(len(rows))*float64(res.NewBytes)/float64(size), units.FormatBytes(peers), secs(took))
	if seq > 1 {
		fmt.Fprintf(d.out, "  the change: %s of new chunks; the origin sent %.2fx of that\n",
			units.FormatBytes(res.NewBytes), float64(originSent)/float64(max(res.NewBytes, 1)))
		fmt.Fprintf(d.out, "  reused on every agent: at least %.1f%% of the artifact (chunks of the release before, already in its store)\n",
			100*float64(minReused)/float64(size))
	}
}

// verifyInstalled checks that every agent's installed file is the last
// release, byte for byte.
func (d *demo) verifyInstalled(context.Context) error {
	want := d.path("release-2", artifactName)
	for _, a := range d.agents {
		got := filepath.Join(a.dir, artifactName)
		if err := sameFile(want, got); err != nil {
			return fmt.Errorf("%s: installed file %s is not release 2: %w", a.name, got, err)
		}
	}
	fmt.Fprintf(d.out, "\nverified: every agent's installed %s is release 2, byte for byte\n", artifactName)
	return nil
}

// sameFile compares two files' bytes.
func sameFile(a, b string) error {
	fa, err := os.Open(a)
	if err != nil {
		return err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return err
	}
	defer fb.Close()
	ba, bb := make([]byte, compareBlock), make([]byte, compareBlock)
	for off := int64(0); ; off += compareBlock {
		na, errA := io.ReadFull(fa, ba)
		nb, errB := io.ReadFull(fb, bb)
		if !bytes.Equal(ba[:na], bb[:nb]) {
			return fmt.Errorf("differs within bytes %d to %d", off, off+int64(max(na, nb)))
		}
		if isEOF(errA) && isEOF(errB) {
			return nil
		}
		if err := errors.Join(readErr(errA), readErr(errB)); err != nil {
			return err
		}
	}
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) }

func readErr(err error) error {
	if isEOF(err) {
		return nil
	}
	return err
}
