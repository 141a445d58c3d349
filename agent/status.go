package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/fleetcast/fleetcast/agent/peerproto"
)

// Status returns a snapshot of the agent's state.
func (a *Agent) Status() peerproto.Status {
	st := peerproto.Status{AgentID: a.id, FleetID: a.fleet.ID(), RootVersion: a.currentRoot().Version,
		OriginBytes: a.origin.Bytes(), UploadedBytes: a.srv.uploaded.Load(), UploadedChunks: a.srv.served.Load(),
		Peers: []peerproto.PeerStatus{}}
	if a.pm() != nil {
		st.Peers = a.pm().status()
	}
	for _, ch := range a.channels {
		st.Subscriptions = append(st.Subscriptions, ch.snapshot())
	}
	return st
}

// serve starts the status, metrics and peer API on listen, over TLS when the fleet
// has a secret, and starts finding peers; stop shuts the API down, stops
// finding and following peers, and returns once every goroutine serve
// started has ended, so that Run can release the data directory.
func (a *Agent) serve(ctx context.Context) (stop func(), err error) {
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", a.cfg.Listen, err)
	}
	pctx, stopPeering := context.WithCancel(ctx)
	waitPeering, err := a.startPeering(pctx, ln)
	if err != nil {
		stopPeering()
		ln.Close()
		return nil, err
	}
	if conf := a.fleet.ServerTLSOptionalClient(); conf != nil {
		ln = tls.NewListener(ln, conf)
	}
	mux := http.NewServeMux()
	a.srv.register(mux)
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(a.Status())
	})
	mux.Handle("GET /metrics", a.metrics.handler(a.log))
	errLog := log.New(&handshakeLog{log: a.log, limit: newWarnLimiter(refusalWarnEvery)}, "", 0)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 16 << 10,
		IdleTimeout: 2 * peerproto.LongPoll * time.Second, ErrorLog: errLog,
		BaseContext: func(net.Listener) context.Context { return pctx }}
	a.log.Info("status and peer API listening", slog.String("addr", ln.Addr().String()), slog.String("scheme", a.fleet.Scheme()))
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("status API stopped", slog.String("reason", err.Error()))
		}
	}()
	return func() {
		stopPeering() // ends peering, and the requests in progress (long-polls)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		<-served
		if err := waitPeering(); err != nil {
			a.log.Error("peer discovery stopped", slog.String("reason", err.Error()))
		}
	}, nil
}
