package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/fleetcast/fleetcast/internal/units"

	"golang.org/x/time/rate"

	"github.com/fleetcast/fleetcast/agent/fleettls"
	"github.com/fleetcast/fleetcast/agent/statusclient"
	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/publisher"
	"github.com/fleetcast/fleetcast/signing"
)

// The demo's release: one product channel, smaller chunks than the default
// so that a small --size still has enough chunks to share among agents and
// a 64 KiB change touches a small part of it.
const (
	product      = "demo-app"
	channel      = "stable"
	artifactName = "demo-app.bin"
	changeSize   = 64 << 10 // bytes changed in the middle of release 2
	// originBurst is the origin limiter's bucket: 64 KiB, so that the rate
	// holds at the scale of one chunk.
	originBurst = 64 << 10
)

// seed seeds the release's content: the same at every run, so chunk
// boundaries and the delta are too.
var seed = [32]byte{'f', 'l', 'e', 'e', 't', 'c', 'a', 's', 't', '-', 'd', 'e', 'm', 'o'}

var chunking = manifest.Chunking{Algorithm: manifest.ChunkingFastCDC, Min: 32 << 10, Avg: 128 << 10, Max: 512 << 10}

func (d *demo) path(elem ...string) string { return filepath.Join(append([]string{d.dir}, elem...)...) }

// makeTrust creates the throwaway signing key and a 1-of-1 trust root, and
// publishes the root to the origin directory.
func (d *demo) makeTrust(ctx context.Context) error {
	key, err := signing.GenerateKey(nil)
	if err != nil {
		return err
	}
	root := &signing.Root{Version: 1, Threshold: 1, Keys: []signing.PublicKey{key.Public},
		Expires: time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)}
	env, err := root.Envelope()
	if err != nil {
		return err
	}
	env.Sign(key)
	data := env.Marshal()
	files := map[string][]byte{"root.json": data, "demo.pub": signing.MarshalPublicKey(key.Public),
		"demo.key": signing.MarshalUnencryptedPrivateKey(key)}
	for name, b := range files {
		if err := os.WriteFile(d.path(name), b, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	if _, _, err := (publisher.Origin{Dir: d.path("origin")}).AddRoot(ctx, data); err != nil {
		return fmt.Errorf("publish the demo root: %w", err)
	}
	d.key = key
	fmt.Fprintf(d.out, "signing key %s: a throwaway demo key, not encrypted, made for this run only (never sign real releases with it)\n", key.Public.ID)
	fmt.Fprintf(d.out, "trust root version 1: 1 of 1 key, expires in 24h; published to the origin\n")
	return nil
}

// makeFleet writes a fleet secret: the agents talk to each other over
// mutual TLS, as a real fleet should.
func (d *demo) makeFleet(context.Context) error {
	p := d.path("fleet.secret")
	if err := fleettls.NewSecret(p); err != nil {
		return err
	}
	fleet, err := fleettls.Load(p)
	if err != nil {
		return err
	}
	d.status = statusclient.New(fleet)
	d.status.Timeout = statusTimeout
	fmt.Fprintf(d.out, "fleet secret: agents talk to each other over mutual TLS (fleet %s)\n", fleet.ID())
	return nil
}

// originServer serves the origin directory on loopback through one shared
// rate limiter, and counts the bytes it sends.
type originServer struct {
	srv     *http.Server
	url     string
	limiter *rate.Limiter
	sent    atomic.Int64
}

func (d *demo) startOrigin(context.Context) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("origin: %w", err)
	}
	bps := d.opts.OriginMbit * 1e6 / 8
	o := &originServer{url: "http://" + ln.Addr().String() + "/", limiter: rate.NewLimiter(rate.Limit(bps), originBurst)}
	files := http.FileServer(http.Dir(d.path("origin")))
	o.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		files.ServeHTTP(&limitedWriter{ResponseWriter: w, ctx: r.Context(), o: o}, r)
	})}
	go o.srv.Serve(ln)
	d.origin = o
	fmt.Fprintf(d.out, "origin %s limited to %g Mbit/s, like a branch office's WAN link (%s/s for all agents together)\n",
		o.url, d.opts.OriginMbit, units.FormatBytes(int64(bps)))
	return nil
}

func (o *originServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	o.srv.Shutdown(ctx)
}

// limitedWriter writes a response at most a burst at a time, each when the
// origin's limiter allows it. It has no ReadFrom, so io.Copy comes here.
type limitedWriter struct {
	http.ResponseWriter
	ctx context.Context
	o   *originServer
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n := min(len(p)-done, originBurst)
		if err := w.o.limiter.WaitN(w.ctx, n); err != nil {
			return done, err
		}
		m, err := w.ResponseWriter.Write(p[done : done+n])
		done += m
		w.o.sent.Add(int64(m))
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// writeReleases writes release 1 (a fixed pseudo-random sequence, the same
// at every run) and release 2, the same with changeSize bytes in the middle
// replaced.
func (d *demo) writeReleases(context.Context) error {
	r1, r2 := d.path("release-1", artifactName), d.path("release-2", artifactName)
	rng := rand.NewChaCha8(seed)
	if err := writeFile(r1, io.LimitReader(rng, d.opts.Size)); err != nil {
		return fmt.Errorf("write release 1: %w", err)
	}
	f, err := os.Open(r1)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := writeFile(r2, f); err != nil {
		return fmt.Errorf("write release 2: %w", err)
	}
	if err := overwriteMiddle(r2, d.opts.Size, rng); err != nil {
		return fmt.Errorf("write release 2: %w", err)
	}
	return nil
}

func writeFile(path string, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	return errors.Join(err, f.Close())
}

func overwriteMiddle(path string, size int64, rng io.Reader) error {
	change := make([]byte, min(changeSize, size/4))
	if _, err := io.ReadFull(rng, change); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(change, size/2)
	return errors.Join(err, f.Close())
}

// publish signs and publishes release seq (1 or 2) with the demo key.
func (d *demo) publish(ctx context.Context, seq int) (*publisher.Result, error) {
	res, err := publisher.Publish(ctx, publisher.Origin{Dir: d.path("origin")}, d.path(fmt.Sprintf("release-%d", seq), artifactName),
		publisher.Options{Product: product, Channel: channel, Version: fmt.Sprintf("1.0.%d", seq-1),
			Expires: 24 * time.Hour, Install: copyInstall(), Chunking: chunking, Keys: []*signing.PrivateKey{d.key}})
	if err != nil {
		return nil, fmt.Errorf("publish release %d: %w", seq, err)
	}
	if !res.Published {
		return nil, fmt.Errorf("publish release %d: not published (signed by %d key(s), threshold %d)", seq, len(res.SignedBy), res.Root.Threshold)
	}
	return res, nil
}
