//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/fleetcast/fleetcast/internal/netlab"
	"github.com/fleetcast/fleetcast/tools/internal/product"
)

// originPort is where the origin host's HTTP server listens.
const originPort = "8080"

// labPassphrase encrypts the lab's throwaway signing key.
const labPassphrase = "fleetlab throwaway key"

// newEnv builds the topology: the lab, an origin host shaped to the origin
// rate serving the artifact and the current origin directory, and n agent
// hosts shaped to the peer rates. The caller closes it with env.close.
func newEnv(ctx context.Context, o *options, log *slog.Logger) (*env, error) {
	e := &env{dir: o.dir, rates: o.rates, log: log, srvRoot: new(atomic.Pointer[string])}
	lab, err := netlab.New("fclab")
	if err != nil {
		return nil, err
	}
	e.lab = lab
	if e.origin, err = lab.AddHost("origin", &netlab.Shape{EgressBits: o.rates.origin}); err != nil {
		return e, err
	}
	for i := range o.n {
		h, err := lab.AddHost(fmt.Sprintf("h%d", i+1), &netlab.Shape{EgressBits: o.rates.upload, IngressBits: o.rates.download})
		if err != nil {
			return e, err
		}
		e.hosts = append(e.hosts, h)
	}
	e.artifact = filepath.Join(e.dir, "artifact-1.bin")
	if err := writeRandom(e.artifact, o.size, o.seed); err != nil {
		return e, err
	}
	e.size = o.size
	return e, e.serveOrigin()
}

// serveOrigin serves, on the origin host, the artifact at /artifact and the
// current origin directory (env.setOriginDir) under /.
func (e *env) serveOrigin() error {
	ln, err := e.origin.Listen("tcp", e.origin.IP()+":"+originPort)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /artifact", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, e.artifact) })
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		root := e.srvRoot.Load()
		if root == nil {
			http.NotFound(w, r)
			return
		}
		http.FileServer(http.Dir(*root)).ServeHTTP(w, r)
	})
	e.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go e.srv.Serve(ln)
	e.originURL = "http://" + e.origin.IP() + ":" + originPort
	return nil
}

// setOriginDir makes the origin serve dir under /.
func (e *env) setOriginDir(dir string) { e.srvRoot.Store(&dir) }

// originTx is the bytes the origin host has sent so far.
func (e *env) originTx() int64 {
	n, err := e.origin.TxBytes()
	if err != nil {
		e.log.Warn("read origin counter", slog.String("reason", err.Error()))
	}
	return n
}

// close stops the origin server and removes every namespace and link.
func (e *env) close() error {
	if e.srv != nil {
		e.srv.Close()
	}
	if e.lab == nil {
		return nil
	}
	return e.lab.Close()
}

// writeRandom writes size pseudo-random bytes from seed to path.
func writeRandom(path string, size int64, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	if _, err := io.CopyN(f, randReader{r}, size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type randReader struct{ r *rand.Rand }

func (r randReader) Read(p []byte) (int, error) {
	for i := 0; i+8 <= len(p); i += 8 {
		v := r.r.Uint64()
		for j := range 8 {
			p[i+j] = byte(v >> (8 * j))
		}
	}
	for i := len(p) &^ 7; i < len(p); i++ {
		p[i] = byte(r.r.Uint32())
	}
	return len(p), nil
}

// mutate writes a copy of src to dst with frac of its bytes, in one run in
// the middle, replaced by other pseudo-random bytes; it returns how many
// bytes changed.
func mutate(src, dst string, frac float64, seed uint64) (int64, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return 0, err
	}
	n := int64(float64(len(data)) * frac)
	off := (int64(len(data)) - n) / 2
	randReader{rand.New(rand.NewPCG(seed+1, seed))}.Read(data[off : off+n])
	return n, os.WriteFile(dst, data, 0o644)
}

// fleetcastCLI runs the fleetcast binary's publisher commands in dir.
type fleetcastCLI struct {
	bin string
	dir string
}

func (c fleetcastCLI) run(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "FLEETCAST_PASSPHRASE="+labPassphrase)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("fleetcast %s: %v\n%s", args[0], err, out)
	}
	return nil
}

// setupKeys makes the lab's signing key and a 1-of-1 trust root in dir.
func (c fleetcastCLI) setupKeys(ctx context.Context) error {
	for _, args := range [][]string{
		{"keygen", "-o", "lab"},
		{"root", "init", "-o", "root.json", "--key", "lab.pub", "--threshold", "1", "--expires", "8760h"},
		{"root", "sign", "--yes", "--key", "lab.key", "root.json"},
		{"fleet-secret", "fleet.secret"},
		{"fleet-secret", "other-fleet.secret"},
	} {
		if err := c.run(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// findBinary returns the product's command in pkg (e.g. "cmd/fleetcast"):
// path if given, else one built with the go command into dir.
func findBinary(ctx context.Context, path, dir, pkg string) (string, error) {
	name := filepath.Base(pkg)
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("%s binary: %w", name, err)
		}
		return filepath.Abs(path)
	}
	bin := filepath.Join(dir, name)
	if err := product.Build(ctx, pkg, bin); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return "", fmt.Errorf("no -%s binary given and no go command to build one", name)
		}
		return "", fmt.Errorf("%w (run fleetlab from the repository, or pass -%s)", err, name)
	}
	return bin, nil
}
