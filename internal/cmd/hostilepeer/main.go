// Command hostilepeer plays a malicious fleet member, for tests and the
// rollout lab. It advertises itself over mDNS like a fleetcast agent, claims
// to hold every chunk of a channel's latest release, serves the true signed
// manifest, and serves bad chunk bytes:
//
//	hostilepeer -origin ./mirror -product app -channel stable \
//	    -listen 198.18.7.9:7331 -fleet-secret fleet.secret -mode corrupt
//
// Modes: corrupt (the chunk with one byte flipped), wrong-size (the chunk
// and 100 bytes more, declared in Content-Length), slow (the true chunk,
// one byte every 100 ms). An agent must verify each chunk, ban the peer and
// get the chunk elsewhere. It speaks the peer protocol fleetcast-peer/1
// (docs/SPEC.md), over HTTPS with the fleet certificate when -fleet-secret
// is given. It reads the origin mirror directory from disk and never
// changes its state. Every bad chunk served is logged ("served bad chunk").
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/fleetcast/fleetcast/agent/fleettls"
)

const usage = `usage: hostilepeer -origin DIR -product NAME -channel NAME -listen IP:PORT [-fleet-secret FILE] [-mode corrupt|wrong-size|slow]

Plays a malicious fleetcast peer: advertises over mDNS, claims every chunk of
the channel's latest release in DIR (as soon as there is one, and each newer
one), and serves bad chunk bytes.

example:
  hostilepeer -origin ./mirror -product app -channel stable -listen 198.18.7.9:7331 -mode corrupt

flags:
`

// options are the command line.
type options struct {
	origin, product, channel, listen, secret, mode string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run returns the exit code: 0 after SIGTERM or SIGINT, 1 on failure, 2 on
// a usage error.
func run(args []string, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "hostilepeer:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, opts, log); err != nil {
		log.Error("hostilepeer failed", slog.String("err", err.Error()))
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("hostilepeer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.origin, "origin", "", "origin mirror `directory` on disk")
	fs.StringVar(&o.product, "product", "", "product `name`")
	fs.StringVar(&o.channel, "channel", "", "channel `name`")
	fs.StringVar(&o.listen, "listen", "", "`ip:port` to serve and advertise")
	fs.StringVar(&o.secret, "fleet-secret", "", "fleet secret `file`; serve HTTPS with the fleet certificate")
	fs.StringVar(&o.mode, "mode", modeCorrupt, "what to do to chunks: corrupt, wrong-size or slow")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.origin == "" || o.product == "" || o.channel == "" || o.listen == "":
		return o, errors.New("-origin, -product, -channel and -listen are required")
	case o.mode != modeCorrupt && o.mode != modeWrongSize && o.mode != modeSlow:
		return o, fmt.Errorf("-mode %q: want corrupt, wrong-size or slow", o.mode)
	}
	return o, nil
}

// serve runs the peer and its mDNS responder until ctx ends.
func serve(ctx context.Context, o options, log *slog.Logger) error {
	host, port, err := listenAddr(o.listen)
	if err != nil {
		return err
	}
	fleet, err := fleettls.Load(o.secret)
	if err != nil {
		return err
	}
	p := &peer{origin: o.origin, product: o.product, channel: o.channel, mode: o.mode, agentID: newAgentID(),
		fleetID: fleet.ID(), log: log}
	go p.follow(ctx)
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	if cfg := fleet.ServerTLS(); cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	stopMDNS, err := advertise(p.agentID, p.fleetID, host, port, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer stopMDNS()
	srv := &http.Server{Handler: p.handler(), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	log.Info("hostile peer serving", slog.String("listen", o.listen), slog.String("agent", p.agentID),
		slog.String("fleet", p.fleetID), slog.String("mode", o.mode))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	srv.Shutdown(shut)
	return nil
}

// listenAddr splits -listen into an IP to advertise and a port.
func listenAddr(s string) (net.IP, int, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return nil, 0, fmt.Errorf("-listen %q: %w", s, err)
	}
	ip := net.ParseIP(h)
	port, err := strconv.Atoi(p)
	if ip == nil || ip.IsUnspecified() || err != nil || port < 1 || port > 65535 {
		return nil, 0, fmt.Errorf("-listen %q: want an IP address (to advertise) and a port", s)
	}
	return ip, port, nil
}

// newAgentID returns 16 random lowercase hex digits, like an agent's id.
func newAgentID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
